"""ADLS Gen2 data lake: raw/curated/models/inference-logs containers, locked down by default.

Network: ``public_network_access=False`` (private environments) does not switch the public
endpoint off. Azure applies the trusted-services exception (``bypass = AzureServices``) and
resource instance rules only when public access is "enabled from selected networks"; with it
"disabled", Event Hubs Capture and the Databricks access connector (Unity Catalog), which reach
the account from Azure's own network and not through our private endpoints, are refused. So the
account is Enabled *with* a deny-by-default firewall and no IP rules: nothing from the internet
gets in; only the private endpoints and trusted Azure services acting with an identity that
holds a data role on a container (Capture's namespace, the access connector) do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

from cdktn_provider_azurerm.storage_account import (
    StorageAccount,
    StorageAccountBlobProperties,
    StorageAccountBlobPropertiesContainerDeleteRetentionPolicy,
    StorageAccountBlobPropertiesDeleteRetentionPolicy,
    StorageAccountNetworkRules,
    StorageAccountNetworkRulesPrivateLinkAccess,
)
from cdktn_provider_azurerm.role_assignment import RoleAssignment
from cdktn_provider_azurerm.storage_container import StorageContainer
from constructs import Construct

from policies.suppressions import suppress

from .roles import STORAGE_BLOB_DATA_CONTRIBUTOR, STORAGE_BLOB_DATA_READER, assign_role


@dataclass(frozen=True)
class DataLakeProps:
    name: str
    resource_group_name: str
    location: str
    containers: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    replication: str = "ZRS"
    blob_soft_delete_days: int = 7
    container_soft_delete_days: int = 7
    # False: deny-by-default firewall + trusted-services bypass (see the module docstring), not a
    # hard disable. True (dev): open to the internet, still Entra ID only.
    public_network_access: bool = False
    # Resource instance rules: Azure resources (by id) the firewall admits by name, on top of the
    # trusted-services bypass; each still needs a data role to read or write anything.
    trusted_resource_ids: tuple[str, ...] = ()
    # Entra ID only: no account keys, no SAS signed with them. Terraform then needs
    # storage_use_azuread on the provider (set by the platform stack).
    shared_key_access: bool = False
    # ADLS Gen2. False only for an account a service cannot use with one (Azure ML's workspace storage).
    hierarchical_namespace: bool = True


class DataLakeStorage(Construct):
    def __init__(self, scope: Construct, id_: str, props: DataLakeProps):
        super().__init__(scope, id_)
        self.props = props
        self.account = StorageAccount(
            self, "account",
            name=props.name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            account_kind="StorageV2",
            account_tier="Standard",
            account_replication_type=props.replication,
            is_hns_enabled=props.hierarchical_namespace,
            min_tls_version="TLS1_2",
            https_traffic_only_enabled=True,
            allow_nested_items_to_be_public=False,
            cross_tenant_replication_enabled=False,
            infrastructure_encryption_enabled=True,
            shared_access_key_enabled=props.shared_key_access,
            default_to_oauth_authentication=True,
            local_user_enabled=False,  # no SFTP/local users: every identity is an Entra ID one
            # Always Enabled: locking down is the network_rules' job (see the module docstring).
            public_network_access="Enabled",
            network_rules=None if props.public_network_access else StorageAccountNetworkRules(
                default_action="Deny",
                bypass=["AzureServices"],
                ip_rules=[],
                private_link_access=[StorageAccountNetworkRulesPrivateLinkAccess(endpoint_resource_id=r)
                                     for r in props.trusted_resource_ids] or None,
            ),
            blob_properties=StorageAccountBlobProperties(
                delete_retention_policy=StorageAccountBlobPropertiesDeleteRetentionPolicy(
                    days=props.blob_soft_delete_days),
                container_delete_retention_policy=StorageAccountBlobPropertiesContainerDeleteRetentionPolicy(
                    days=props.container_soft_delete_days),
            ),
            tags=props.tags,
        )
        if props.containers:  # checkov's blob-logging check is about the account's containers
            suppress(self, "CKV2_AZURE_21",
                     "Storage Insights (azurerm_log_analytics_storage_insights) needs the account key, and this "
                     "account has shared keys disabled: every access is an Entra ID identity.")
        suppress(self.account, "CKV2_AZURE_1",
                 "Microsoft-managed keys plus infrastructure (double) encryption (MLK-ST-004); a customer-managed "
                 "key needs a key-rotation owner the platform does not have yet.")
        suppress(self.account, "CKV_AZURE_33",
                 "The account is an ADLS Gen2 data lake: no queues are used, so queue logging would record nothing.")
        suppress(self.account, "CKV_AZURE_59",
                 "checkov 3.3 reads the azurerm 4.x attribute public_network_access_enabled. Where "
                 "storage.public_network_access is false (network.private) the endpoint stays Enabled behind a "
                 "deny-by-default firewall with no IP rules (CKV_AZURE_35 passes): only the private endpoints and trusted "
                 "Azure services with a data role (Event Hubs Capture, the Databricks access connector) get in, "
                 "which Azure does not allow with public access Disabled. Dev is open, Entra ID only.")
        self.containers: dict[str, StorageContainer] = {
            name: StorageContainer(
                self, f"container-{name}",
                name=name,
                storage_account_id=self.account.id,
                container_access_type="private",
            )
            for name in props.containers
        }

    @property
    def id(self) -> str:
        return self.account.id

    def _container_id(self, container: str) -> str:
        if container not in self.containers:
            raise KeyError(f"no container {container!r} in {self.props.name}")
        return self.containers[container].id

    def grant_blob_read(self, id_: str, principal_id: str, container: str) -> RoleAssignment:
        """Read-only data access to one container (never the whole account)."""
        return assign_role(self, id_, role=STORAGE_BLOB_DATA_READER,
                           resource_id=self._container_id(container), principal_id=principal_id)

    def grant_blob_write(self, id_: str, principal_id: str, container: str) -> RoleAssignment:
        """Write access to one container (never the whole account), e.g. for Event Hubs Capture.

        Returned so a resource that checks the access when it is created can depend on it.
        """
        return assign_role(self, id_, role=STORAGE_BLOB_DATA_CONTRIBUTOR,
                           resource_id=self._container_id(container), principal_id=principal_id)

    def grant_containers(self, id_prefix: str, principal_id: str,
                         access: Mapping[str, Literal["read", "write"]]) -> dict[str, RoleAssignment]:
        """One role per listed container ("read": Reader, "write": Contributor), none on the account
        or on containers not listed."""
        grant = {"read": self.grant_blob_read, "write": self.grant_blob_write}
        unknown = sorted(set(access.values()) - set(grant))
        if unknown:
            raise ValueError(f"container access must be 'read' or 'write', not {', '.join(unknown)}")
        return {container: grant[level](f"{id_prefix}-{container}", principal_id, container)
                for container, level in access.items()}
