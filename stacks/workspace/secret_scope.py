"""Key-Vault-backed secret scope: Databricks reads secrets from the vault, never stores copies."""

from __future__ import annotations

from dataclasses import dataclass

from cdktn_provider_databricks.secret_scope import SecretScope, SecretScopeKeyvaultMetadata
from constructs import Construct


@dataclass(frozen=True)
class KeyVaultSecretScopeProps:
    name: str
    key_vault_id: str
    key_vault_uri: str


class KeyVaultSecretScope(Construct):
    def __init__(self, scope: Construct, id_: str, props: KeyVaultSecretScopeProps):
        super().__init__(scope, id_)
        self.props = props
        # No initial_manage_principal: on premium only the creator manages the scope, not "users".
        self.scope = SecretScope(
            self, "scope",
            name=props.name,
            backend_type="AZURE_KEYVAULT",
            keyvault_metadata=SecretScopeKeyvaultMetadata(resource_id=props.key_vault_id,
                                                          dns_name=props.key_vault_uri),
        )

    @property
    def name(self) -> str:
        return self.scope.name
