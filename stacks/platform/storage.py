"""ADLS Gen2 data lake: raw/curated/models/inference-logs containers, locked down by default."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_azurerm.storage_account import (
    StorageAccount,
    StorageAccountBlobProperties,
    StorageAccountBlobPropertiesContainerDeleteRetentionPolicy,
    StorageAccountBlobPropertiesDeleteRetentionPolicy,
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
    public_network_access: bool = False
    # Entra ID only: no account keys, no SAS signed with them. Terraform then needs
    # storage_use_azuread on the provider (set by the platform stack).
    shared_key_access: bool = False


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
            is_hns_enabled=True,
            min_tls_version="TLS1_2",
            https_traffic_only_enabled=True,
            allow_nested_items_to_be_public=False,
            cross_tenant_replication_enabled=False,
            infrastructure_encryption_enabled=True,
            shared_access_key_enabled=props.shared_key_access,
            default_to_oauth_authentication=True,
            local_user_enabled=False,  # no SFTP/local users: every identity is an Entra ID one
            public_network_access="Enabled" if props.public_network_access else "Disabled",
            blob_properties=StorageAccountBlobProperties(
                delete_retention_policy=StorageAccountBlobPropertiesDeleteRetentionPolicy(
                    days=props.blob_soft_delete_days),
                container_delete_retention_policy=StorageAccountBlobPropertiesContainerDeleteRetentionPolicy(
                    days=props.container_soft_delete_days),
            ),
            tags=props.tags,
        )
        suppress(self, "CKV2_AZURE_21",
                 "Storage Insights (azurerm_log_analytics_storage_insights) needs the account key, and this "
                 "account has shared keys disabled: every access is an Entra ID identity.")
        suppress(self.account, "CKV2_AZURE_1",
                 "Microsoft-managed keys plus infrastructure (double) encryption (MLK-ST-004); a customer-managed "
                 "key needs a key-rotation owner the platform does not have yet.")
        suppress(self.account, "CKV_AZURE_33",
                 "The account is an ADLS Gen2 data lake: no queues are used, so queue logging would record nothing.")
        suppress(self.account, "CKV_AZURE_59",
                 "checkov 3.3 reads the azurerm 4.x attribute public_network_access_enabled; azurerm 5.x uses "
                 "public_network_access, set from storage.public_network_access: off where network.private is on "
                 "(AKS and Databricks then reach the account through private endpoints), on in dev, Entra ID only.")
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

    def grant_blob_read(self, id_: str, principal_id: str, container: str) -> None:
        """Read-only data access to one container (never the whole account)."""
        assign_role(self, id_, role=STORAGE_BLOB_DATA_READER,
                    resource_id=self._container_id(container), principal_id=principal_id)

    def grant_blob_write(self, id_: str, principal_id: str, container: str) -> RoleAssignment:
        """Write access to one container (never the whole account), e.g. for Event Hubs Capture.

        Returned so a resource that checks the access when it is created can depend on it.
        """
        return assign_role(self, id_, role=STORAGE_BLOB_DATA_CONTRIBUTOR,
                           resource_id=self._container_id(container), principal_id=principal_id)
