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
)
from constructs import Construct

from ..errors import StackInputError


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
                node_public_ip_enabled=False,
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
            tags=props.tags,
        )

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
