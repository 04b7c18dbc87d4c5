"""Azure Databricks workspace: premium (policies, secret ACLs), secure cluster connectivity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cdktn_provider_azurerm.databricks_workspace import DatabricksWorkspace, DatabricksWorkspaceCustomParameters
from constructs import Construct

from policies.suppressions import suppress

from .network import DatabricksSubnets


@dataclass(frozen=True)
class MlWorkspaceProps:
    name: str
    managed_resource_group_name: str
    resource_group_name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)
    sku: Literal["standard", "premium", "trial"] = "premium"
    # Secure cluster connectivity: cluster nodes get no public IPs.
    no_public_ip: bool = True
    public_network_access: bool = True
    # Double encryption of the workspace's root storage (premium only).
    infrastructure_encryption: bool = True
    # VNet injection; required (with a private endpoint) when public network access is off.
    vnet: DatabricksSubnets | None = None


class MlWorkspace(Construct):
    def __init__(self, scope: Construct, id_: str, props: MlWorkspaceProps):
        super().__init__(scope, id_)
        self.props = props
        if not props.public_network_access and props.vnet is None:
            raise ValueError("a Databricks workspace without public network access needs VNet injection (vnet=...)")
        vnet = props.vnet
        custom = DatabricksWorkspaceCustomParameters(
            no_public_ip=props.no_public_ip,
            virtual_network_id=vnet.virtual_network_id if vnet else None,
            public_subnet_name=vnet.host_subnet_name if vnet else None,
            private_subnet_name=vnet.container_subnet_name if vnet else None,
            public_subnet_network_security_group_association_id=vnet.host_nsg_association_id if vnet else None,
            private_subnet_network_security_group_association_id=vnet.container_nsg_association_id if vnet else None,
        )
        self.workspace = DatabricksWorkspace(
            self, "workspace",
            name=props.name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            sku=props.sku,
            managed_resource_group_name=props.managed_resource_group_name,
            public_network_access_enabled=props.public_network_access,
            infrastructure_encryption_enabled=props.infrastructure_encryption and props.sku == "premium",
            custom_parameters=custom,
            # Front-end private link only: Databricks then owns the NSG rules it needs.
            network_security_group_rules_required=(
                "NoAzureDatabricksRules" if not props.public_network_access else ("AllRules" if vnet else None)),
            tags=props.tags,
        )
        suppress(self.workspace, "CKV2_AZURE_48",
                 "DBFS root holds no platform data (tables and models live in the ADLS account); it keeps "
                 "platform-managed keys with infrastructure encryption instead of a customer-managed key.")

    @property
    def id(self) -> str:
        return self.workspace.id

    @property
    def url(self) -> str:
        """https URL of the workspace (the provider attribute is the bare host name)."""
        return f"https://{self.workspace.workspace_url}"
