"""Databricks access connector: the managed identity Unity Catalog reaches the data lake with.

The connector's system-assigned identity is what a Unity Catalog storage credential points at
(``azure_managed_identity.access_connector_id``), so the jobs read and write the data lake with
no client secret and no account key anywhere. It holds no access of its own: the storage
construct's grant methods give it a role per container (see PlatformStack).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_azurerm.databricks_access_connector import (
    DatabricksAccessConnector,
    DatabricksAccessConnectorIdentity,
)
from constructs import Construct


@dataclass(frozen=True)
class AccessConnectorProps:
    name: str
    resource_group_name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)


class UnityCatalogConnector(Construct):
    def __init__(self, scope: Construct, id_: str, props: AccessConnectorProps):
        super().__init__(scope, id_)
        self.props = props
        self.connector = DatabricksAccessConnector(
            self, "connector",
            name=props.name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            # System-assigned: the identity lives and dies with the connector, nothing to rotate or
            # share, and it is the identity the storage firewall's trusted-service path recognises.
            identity=DatabricksAccessConnectorIdentity(type="SystemAssigned"),
            tags=props.tags,
        )

    @property
    def id(self) -> str:
        return self.connector.id

    @property
    def principal_id(self) -> str:
        """Object id of the connector's identity: what the role assignments name."""
        return self.connector.identity.principal_id
