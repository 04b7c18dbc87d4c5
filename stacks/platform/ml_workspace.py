"""Azure ML workspace (reference 004): the registry promotion also registers approved models into.

What it reuses and what it cannot: the environment's Key Vault and Container Registry, yes; the
data lake, no. Azure ML's default storage account cannot have a hierarchical namespace (Azure ML
docs, "associated resources": an existing account may not be ADLS Gen2 or premium; azurerm only
rejects Premium), and the lake is ADLS Gen2, so the workspace gets its own account, locked down
the same way (TLS 1.2, shared keys off, infrastructure encryption, no public blobs, deny-by-default
firewall where private) and reached with the workspace's identity (storage_account_access_type
Identity). Its Application Insights is its own, on the environment's Log Analytics workspace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_azurerm.machine_learning_workspace import (
    MachineLearningWorkspace,
    MachineLearningWorkspaceIdentity,
    MachineLearningWorkspaceManagedNetwork,
)
from constructs import Construct

from policies.suppressions import suppress

from .key_vault import SecretsVault
from .roles import (
    AZUREML_DATA_SCIENTIST,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR,
    assign_role,
)
from .storage import DataLakeProps, DataLakeStorage

# What the workspace identity does in the vault: keep the secrets of its connections. No keys,
# no certificates, no purge (Azure ML asks for more when it creates a vault itself; this one is shared).
WORKSPACE_SECRET_PERMISSIONS = ("get", "list", "set", "delete")
# Outbound from the managed network only to what the workspace's rules approve (private environments).
PRIVATE_ISOLATION = "AllowOnlyApprovedOutbound"


@dataclass(frozen=True)
class AzureMlWorkspaceProps:
    name: str
    storage_account_name: str
    resource_group_name: str
    location: str
    application_insights_id: str
    vault: SecretsVault
    container_registry_id: str
    private: bool = True
    # Prod-like: Azure ML keeps less diagnostic data and encrypts the local scratch disk.
    high_business_impact: bool = True
    storage_replication: str = "ZRS"
    tags: dict[str, str] = field(default_factory=dict)


class AzureMlWorkspace(Construct):
    def __init__(self, scope: Construct, id_: str, props: AzureMlWorkspaceProps):
        super().__init__(scope, id_)
        self.props = props
        self.storage = DataLakeStorage(self, "storage", DataLakeProps(
            name=props.storage_account_name, resource_group_name=props.resource_group_name, location=props.location,
            containers=(), tags=props.tags, replication=props.storage_replication,
            public_network_access=not props.private, hierarchical_namespace=False))
        self.workspace = MachineLearningWorkspace(
            self, "workspace", name=props.name, resource_group_name=props.resource_group_name,
            location=props.location, application_insights_id=props.application_insights_id,
            key_vault_id=props.vault.id, storage_account_id=self.storage.id,
            container_registry_id=props.container_registry_id,
            identity=MachineLearningWorkspaceIdentity(type="SystemAssigned"),
            public_network_access_enabled=not props.private,
            managed_network=MachineLearningWorkspaceManagedNetwork(isolation_mode=PRIVATE_ISOLATION)
            if props.private else None,
            storage_account_access_type="Identity",
            high_business_impact=props.high_business_impact,
            v1_legacy_mode_enabled=False, sku_name="Basic", tags=props.tags)
        suppress(self.workspace, "CKV2_AZURE_50",
                 "checkov reads the azurerm 4.x public_network_access_enabled of the workspace's storage account. Where "
                 "the environment is private that account keeps its endpoint Enabled behind a deny-by-default firewall "
                 "with no IP rules (trusted Azure services and private endpoints only), like the data lake "
                 "(CKV_AZURE_59); dev has no workspace.")
        principal = self.workspace.identity.principal_id
        for role in (STORAGE_BLOB_DATA_CONTRIBUTOR, STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR):
            assign_role(self, f"storage-{role.lower().replace(' ', '-')}", role=role, resource_id=self.storage.id,
                        principal_id=principal)
        props.vault.grant("ml-workspace", principal, secrets=WORKSPACE_SECRET_PERMISSIONS)

    @property
    def id(self) -> str:
        return self.workspace.id

    @property
    def discovery_url(self) -> str:
        return self.workspace.discovery_url

    def grant_register_models(self, id_: str, principal_id: str) -> None:
        """Register model versions (mlkit promote) without managing the workspace."""
        assign_role(self, id_, role=AZUREML_DATA_SCIENTIST, resource_id=self.workspace.id, principal_id=principal_id)
