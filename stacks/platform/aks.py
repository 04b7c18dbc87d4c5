"""AKS for the scoring service: Entra ID RBAC only, no local accounts, workload identity on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cdktn_provider_azurerm.kubernetes_cluster import (
    KubernetesCluster,
    KubernetesClusterApiServerAccessProfile,
    KubernetesClusterAzureActiveDirectoryRoleBasedAccessControl,
    KubernetesClusterDefaultNodePool,
    KubernetesClusterDefaultNodePoolUpgradeSettings,
    KubernetesClusterIdentity,
    KubernetesClusterNetworkProfile,
    KubernetesClusterNodeProvisioningProfile,
    KubernetesClusterOmsAgent,
)
from constructs import Construct

from policies.suppressions import suppress

from ..errors import StackInputError

# Temp (resource) disk size in GiB of the VM sizes we use: an ephemeral OS disk must fit on it.
TEMP_DISK_GIB = {"Standard_D2ds_v5": 75, "Standard_D4ds_v5": 150, "Standard_D8ds_v5": 300,
                 "Standard_D16ds_v5": 600, "Standard_D32ds_v5": 1200}
# Pods per node: the overlay network allows 250; 110 is AKS's kubenet default and well above
# the 50 below which nodes run out of pod slots before CPU (checkov CKV_AZURE_168).
MAX_PODS = 110


@dataclass(frozen=True)
class ScoringClusterProps:
    name: str
    dns_prefix: str
    resource_group_name: str
    location: str
    tenant_id: str
    node_pool_name: str
    node_pool_rotation_name: str
    tags: dict[str, str] = field(default_factory=dict)
    kubernetes_version: str | None = None
    vm_size: str = "Standard_D4ds_v5"
    min_count: int = 1
    max_count: int = 3
    os_disk_size_gb: int = 128
    sku_tier: Literal["Free", "Standard", "Premium"] = "Standard"
    admin_group_object_ids: tuple[str, ...] = ()
    authorized_ip_ranges: tuple[str, ...] = ()
    private_cluster: bool = False
    log_analytics_workspace_id: str | None = None  # Container Insights (logs and metrics to Azure Monitor)
    # Nodes in the platform VNet: they reach the registry, storage, vault and hub via private endpoints.
    vnet_subnet_id: str | None = None


def os_disk_type(vm_size: str, os_disk_size_gb: int) -> str:
    """Ephemeral OS disks (local, faster, free, reimaged on upgrade) when the VM's temp disk can hold them."""
    return "Ephemeral" if TEMP_DISK_GIB.get(vm_size, 0) >= os_disk_size_gb else "Managed"


class ScoringCluster(Construct):
    def __init__(self, scope: Construct, id_: str, props: ScoringClusterProps):
        super().__init__(scope, id_)
        if props.min_count > props.max_count:
            raise StackInputError("aks.min_count", f"{props.min_count} is above max_count {props.max_count}")
        self.props = props
        self.cluster = KubernetesCluster(
            self, "cluster",
            name=props.name,
            dns_prefix=props.dns_prefix,
            resource_group_name=props.resource_group_name,
            location=props.location,
            kubernetes_version=props.kubernetes_version,
            sku_tier=props.sku_tier,
            identity=KubernetesClusterIdentity(type="SystemAssigned"),
            default_node_pool=KubernetesClusterDefaultNodePool(
                name=props.node_pool_name,
                temporary_name_for_rotation=props.node_pool_rotation_name,
                vm_size=props.vm_size,
                auto_scaling_enabled=True,
                min_count=props.min_count,
                max_count=props.max_count,
                os_disk_size_gb=props.os_disk_size_gb,
                os_disk_type=os_disk_type(props.vm_size, props.os_disk_size_gb),
                max_pods=MAX_PODS,
                # Encrypts temp disks, caches and the OS disk at the host. Needs the subscription
                # feature Microsoft.Compute/EncryptionAtHost registered once (az feature register).
                host_encryption_enabled=True,
                node_public_ip_enabled=False,
                vnet_subnet_id=props.vnet_subnet_id,
                upgrade_settings=KubernetesClusterDefaultNodePoolUpgradeSettings(max_surge="10%"),
                tags=props.tags,
            ),
            # azurerm 5.x requires the block; Manual = the node pools above, no node auto-provisioning.
            node_provisioning_profile=KubernetesClusterNodeProvisioningProfile(mode="Manual"),
            role_based_access_control_enabled=True,
            azure_active_directory_role_based_access_control=(
                KubernetesClusterAzureActiveDirectoryRoleBasedAccessControl(
                    azure_rbac_enabled=True,
                    tenant_id=props.tenant_id,
                    admin_group_object_ids=list(props.admin_group_object_ids) or None,
                )
            ),
            local_account_disabled=True,
            oidc_issuer_enabled=True,
            workload_identity_enabled=True,
            azure_policy_enabled=True,
            run_command_enabled=False,
            automatic_upgrade_channel="patch",
            node_os_upgrade_channel="NodeImage",
            image_cleaner_enabled=True,
            image_cleaner_interval_hours=48,
            network_profile=KubernetesClusterNetworkProfile(
                network_plugin="azure",
                network_plugin_mode="overlay",
                network_data_plane="cilium",
                network_policy="cilium",
                load_balancer_sku="standard",
            ),
            api_server_access_profile=(
                KubernetesClusterApiServerAccessProfile(authorized_ip_ranges=list(props.authorized_ip_ranges))
                if props.authorized_ip_ranges else None
            ),
            private_cluster_enabled=props.private_cluster,
            oms_agent=(KubernetesClusterOmsAgent(log_analytics_workspace_id=props.log_analytics_workspace_id,
                                                 msi_auth_for_monitoring_enabled=True)
                       if props.log_analytics_workspace_id else None),
            tags=props.tags,
        )
        # Deliberate trade-offs, reviewed with the platform team (see `mlkit check`).
        suppress(self.cluster, "CKV_AZURE_115",
                 "The API server is restricted to authorized_ip_ranges instead (MLK-AKS-005 enforces it in "
                 "prod-like environments); a private cluster would need CI runners inside the VNet.")
        suppress(self.cluster, "CKV_AZURE_117",
                 "Node disks use platform-managed keys plus encryption at host; a disk encryption set (CMK) "
                 "needs a key-rotation owner the platform does not have yet.")
        suppress(self.cluster, "CKV_AZURE_172",
                 "The Secrets Store CSI driver is not installed: the scoring service reads Key Vault through "
                 "its workload identity, so there are no mounted secrets to rotate.")
        suppress(self.cluster, "CKV_AZURE_232",
                 "One autoscaling system pool runs the single scoring deployment; a separate user pool would "
                 "double the minimum node count. Revisit when more workloads land on AKS.")

    @property
    def id(self) -> str:
        return self.cluster.id

    @property
    def oidc_issuer_url(self) -> str:
        return self.cluster.oidc_issuer_url

    @property
    def kubelet_object_id(self) -> str:
        """Object id of the identity the nodes pull images with (gets AcrPull on the registry)."""
        return self.cluster.kubelet_identity.object_id
