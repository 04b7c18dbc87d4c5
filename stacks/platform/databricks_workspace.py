"""Azure Databricks workspace: premium (policies, secret ACLs), secure cluster connectivity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cdktn_provider_azurerm.databricks_workspace import DatabricksWorkspace, DatabricksWorkspaceCustomParameters
from constructs import Construct


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


class MlWorkspace(Construct):
    def __init__(self, scope: Construct, id_: str, props: MlWorkspaceProps):
        super().__init__(scope, id_)
        self.props = props
        self.workspace = DatabricksWorkspace(
            self, "workspace",
            name=props.name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            sku=props.sku,
            managed_resource_group_name=props.managed_resource_group_name,
            public_network_access_enabled=props.public_network_access,
            infrastructure_encryption_enabled=props.infrastructure_encryption and props.sku == "premium",
            custom_parameters=DatabricksWorkspaceCustomParameters(no_public_ip=props.no_public_ip),
            tags=props.tags,
        )

    @property
    def id(self) -> str:
        return self.workspace.id

    @property
    def url(self) -> str:
        """https URL of the workspace (the provider attribute is the bare host name)."""
        return f"https://{self.workspace.workspace_url}"
