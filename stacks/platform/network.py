"""Private network: a VNet for Databricks VNet injection and private endpoints.

Turning a workspace's public network access off is only deployable with VNet injection and a
front-end private endpoint (Azure rejects it otherwise), and the data services are reached
privately the same way. One construct owns the VNet, its subnets, the NSG the Databricks
subnets need, and every private endpoint with its DNS zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_azurerm.network_security_group import NetworkSecurityGroup
from cdktn_provider_azurerm.private_dns_zone import PrivateDnsZone
from cdktn_provider_azurerm.private_dns_zone_virtual_network_link import PrivateDnsZoneVirtualNetworkLink
from cdktn_provider_azurerm.private_endpoint import (
    PrivateEndpoint,
    PrivateEndpointPrivateDnsZoneGroup,
    PrivateEndpointPrivateServiceConnection,
)
from cdktn_provider_azurerm.subnet import Subnet, SubnetDelegation, SubnetDelegationServiceDelegation
from cdktn_provider_azurerm.subnet_network_security_group_association import SubnetNetworkSecurityGroupAssociation
from cdktn_provider_azurerm.virtual_network import VirtualNetwork
from constructs import Construct

from envconfig.naming import PRIVATE_DNS_ZONES, Names

from .roles import NETWORK_CONTRIBUTOR, assign_role

# Actions Azure Databricks needs on its delegated subnets (from the VNet-injection docs).
_DATABRICKS_DELEGATION_ACTIONS = [
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    "Microsoft.Network/virtualNetworks/subnets/prepareNetworkPolicies/action",
    "Microsoft.Network/virtualNetworks/subnets/unprepareNetworkPolicies/action",
]


@dataclass(frozen=True)
class PrivateNetworkProps:
    names: Names
    resource_group_name: str
    location: str
    address_space: str
    databricks_host_prefix: str
    databricks_container_prefix: str
    private_endpoints_prefix: str
    aks_nodes_prefix: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatabricksSubnets:
    """What the workspace's custom_parameters need for VNet injection."""

    virtual_network_id: str
    host_subnet_name: str
    container_subnet_name: str
    host_nsg_association_id: str
    container_nsg_association_id: str


class PrivateNetwork(Construct):
    def __init__(self, scope: Construct, id_: str, props: PrivateNetworkProps):
        super().__init__(scope, id_)
        self.props = props
        n = props.names
        self.vnet = VirtualNetwork(
            self, "vnet", name=n.virtual_network, resource_group_name=props.resource_group_name,
            location=props.location, address_space=[props.address_space], tags=props.tags)
        # Databricks manages the rules of this NSG itself (NoAzureDatabricksRules + private link);
        # it starts with no inbound allow rules of ours.
        self.databricks_nsg = NetworkSecurityGroup(
            self, "databricks-nsg", name=n.network_security_group("databricks"),
            resource_group_name=props.resource_group_name, location=props.location, tags=props.tags)
        host = self._databricks_subnet("host", props.databricks_host_prefix)
        container = self._databricks_subnet("container", props.databricks_container_prefix)
        self.endpoints_subnet = Subnet(
            self, "subnet-endpoints", name=n.subnet("endpoints"), resource_group_name=props.resource_group_name,
            virtual_network_name=self.vnet.name, address_prefixes=[props.private_endpoints_prefix],
            default_outbound_access_enabled=False)
        # Private endpoints need no inbound rules of ours; the NSG makes any later rule explicit and
        # logged rather than absent (checkov CKV2_AZURE_31).
        self.endpoints_nsg = NetworkSecurityGroup(
            self, "endpoints-nsg", name=n.network_security_group("endpoints"),
            resource_group_name=props.resource_group_name, location=props.location, tags=props.tags)
        SubnetNetworkSecurityGroupAssociation(
            self, "nsg-endpoints", subnet_id=self.endpoints_subnet.id, network_security_group_id=self.endpoints_nsg.id)
        # AKS nodes join the VNet so image pulls and model reads go through the private endpoints.
        self.aks_subnet = Subnet(
            self, "subnet-aks", name=n.subnet("aks"), resource_group_name=props.resource_group_name,
            virtual_network_name=self.vnet.name, address_prefixes=[props.aks_nodes_prefix])
        self.aks_nsg = NetworkSecurityGroup(
            self, "aks-nsg", name=n.network_security_group("aks"),
            resource_group_name=props.resource_group_name, location=props.location, tags=props.tags)
        SubnetNetworkSecurityGroupAssociation(
            self, "nsg-aks", subnet_id=self.aks_subnet.id, network_security_group_id=self.aks_nsg.id)
        self.databricks = DatabricksSubnets(
            virtual_network_id=self.vnet.id,
            host_subnet_name=host[0].name, container_subnet_name=container[0].name,
            host_nsg_association_id=host[1].id, container_nsg_association_id=container[1].id)
        self._zones: dict[str, PrivateDnsZone] = {}

    def _databricks_subnet(self, purpose: str, prefix: str) -> tuple[Subnet, SubnetNetworkSecurityGroupAssociation]:
        p = self.props
        subnet = Subnet(
            self, f"subnet-{purpose}", name=p.names.subnet(f"dbw-{purpose}"), resource_group_name=p.resource_group_name,
            virtual_network_name=self.vnet.name, address_prefixes=[prefix], default_outbound_access_enabled=False,
            delegation=[SubnetDelegation(name="databricks", service_delegation=SubnetDelegationServiceDelegation(
                name="Microsoft.Databricks/workspaces", actions=_DATABRICKS_DELEGATION_ACTIONS))])
        assoc = SubnetNetworkSecurityGroupAssociation(
            self, f"nsg-{purpose}", subnet_id=subnet.id, network_security_group_id=self.databricks_nsg.id)
        return subnet, assoc

    def grant_aks_subnet(self, id_: str, cluster_principal_id: str):
        """The cluster identity manages load balancers and NICs in the node subnet (and only there)."""
        return assign_role(self, id_, role=NETWORK_CONTRIBUTOR, resource_id=self.aks_subnet.id,
                           principal_id=cluster_principal_id)

    def _zone(self, subresource: str) -> PrivateDnsZone:
        if subresource not in self._zones:
            zone = PrivateDnsZone(self, f"zone-{subresource}", name=PRIVATE_DNS_ZONES[subresource],
                                  resource_group_name=self.props.resource_group_name, tags=self.props.tags)
            PrivateDnsZoneVirtualNetworkLink(
                self, f"zone-link-{subresource}", name=self.props.names.virtual_network,
                private_dns_zone_id=zone.id, virtual_network_id=self.vnet.id, registration_enabled=False,
                tags=self.props.tags)
            self._zones[subresource] = zone
        return self._zones[subresource]

    def private_endpoint(self, target: str, resource_id: str, subresource: str) -> PrivateEndpoint:
        """Reach ``resource_id`` privately: endpoint in the endpoints subnet + its DNS record."""
        if subresource not in PRIVATE_DNS_ZONES:
            raise ValueError(f"no private DNS zone known for sub-resource {subresource!r}")
        zone = self._zone(subresource)
        name = self.props.names.private_endpoint(target)
        return PrivateEndpoint(
            self, f"pe-{target}", name=name, resource_group_name=self.props.resource_group_name,
            location=self.props.location, subnet_id=self.endpoints_subnet.id, tags=self.props.tags,
            private_service_connection=PrivateEndpointPrivateServiceConnection(
                name=name, is_manual_connection=False, private_connection_resource_id=resource_id,
                subresource_names=[subresource]),
            private_dns_zone_group=PrivateEndpointPrivateDnsZoneGroup(name="default", private_dns_zone_ids=[zone.id]))
