"""Key Vault with access policies: every permission is an explicit grant, nobody gets purge by default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

from cdktn_provider_azurerm.key_vault import KeyVault, KeyVaultNetworkAcls
from cdktn_provider_azurerm.key_vault_access_policy import KeyVaultAccessPolicyA
from constructs import Construct

from policies.suppressions import suppress

# The config speaks lowercase (as the Azure CLI does); the provider wants these exact spellings.
_SPELLING = {
    "get": "Get", "list": "List", "set": "Set", "delete": "Delete", "recover": "Recover", "backup": "Backup",
    "restore": "Restore", "purge": "Purge", "create": "Create", "update": "Update", "import": "Import",
    "decrypt": "Decrypt", "encrypt": "Encrypt", "unwrapkey": "UnwrapKey", "wrapkey": "WrapKey",
    "verify": "Verify", "sign": "Sign", "managecontacts": "ManageContacts", "manageissuers": "ManageIssuers",
    "getissuers": "GetIssuers", "listissuers": "ListIssuers", "setissuers": "SetIssuers",
    "deleteissuers": "DeleteIssuers",
}


def provider_permissions(perms: Iterable[str]) -> list[str]:
    """['get', 'unwrapkey'] -> ['Get', 'UnwrapKey']; an unknown permission is a KeyError naming it."""
    out = []
    for p in perms:
        try:
            out.append(_SPELLING[p.lower()])
        except KeyError:
            raise KeyError(f"unknown Key Vault permission {p!r}") from None
    return out


@dataclass(frozen=True)
class SecretsVaultProps:
    name: str
    resource_group_name: str
    location: str
    tenant_id: str
    tags: dict[str, str] = field(default_factory=dict)
    sku: Literal["standard", "premium"] = "standard"
    soft_delete_retention_days: int = 90
    purge_protection: bool = True
    network_default_action: Literal["Allow", "Deny"] = "Deny"
    allowed_ip_ranges: tuple[str, ...] = ()


class SecretsVault(Construct):
    def __init__(self, scope: Construct, id_: str, props: SecretsVaultProps):
        super().__init__(scope, id_)
        self.props = props
        self.vault = KeyVault(
            self, "vault",
            name=props.name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            tenant_id=props.tenant_id,
            sku_name=props.sku,
            # Access policies (not Azure RBAC) so grants are per vault and reviewable in one place.
            rbac_authorization_enabled=False,
            soft_delete_retention_days=props.soft_delete_retention_days,
            purge_protection_enabled=props.purge_protection,
            enabled_for_deployment=False,
            enabled_for_disk_encryption=False,
            enabled_for_template_deployment=False,
            network_acls=KeyVaultNetworkAcls(
                default_action=props.network_default_action,
                # Trusted Microsoft services include AzureDatabricks (the secret scope reads through it).
                bypass="AzureServices",
                ip_rules=list(props.allowed_ip_ranges),
            ),
            tags=props.tags,
        )
        suppress(self.vault, "CKV_AZURE_189",
                 "The Key Vault-backed Databricks secret scope reads through the trusted-services bypass, which "
                 "only works with public network access on; the ACL default action is Deny in prod-like "
                 "environments (MLK-KV-003) and a private endpoint serves the VNet.")
        self.policies: dict[str, KeyVaultAccessPolicyA] = {}

    @property
    def id(self) -> str:
        return self.vault.id

    @property
    def uri(self) -> str:
        return self.vault.vault_uri

    def grant(self, id_: str, principal_object_id: str, *, secrets: Iterable[str] = (),
              keys: Iterable[str] = (), certificates: Iterable[str] = ()) -> KeyVaultAccessPolicyA:
        """One access policy for one principal with exactly these permissions."""
        secrets, keys, certificates = (provider_permissions(x) for x in (secrets, keys, certificates))
        if not (secrets or keys or certificates):
            raise ValueError(f"Key Vault grant {id_!r} grants nothing")
        policy = KeyVaultAccessPolicyA(
            self, f"policy-{id_}",
            key_vault_id=self.vault.id,
            tenant_id=self.props.tenant_id,
            object_id=principal_object_id,
            secret_permissions=secrets or None,
            key_permissions=keys or None,
            certificate_permissions=certificates or None,
        )
        self.policies[id_] = policy
        return policy

    def grant_secret_read(self, id_: str, principal_object_id: str) -> KeyVaultAccessPolicyA:
        """Read one secret by name: Get only (no List, so names of other secrets stay hidden)."""
        return self.grant(id_, principal_object_id, secrets=["get"])
