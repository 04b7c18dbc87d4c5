"""The environment's resource group: every platform resource lives in it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_azurerm.resource_group import ResourceGroup
from constructs import Construct


@dataclass(frozen=True)
class ResourceGroupProps:
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)


class PlatformResourceGroup(Construct):
    def __init__(self, scope: Construct, id_: str, props: ResourceGroupProps):
        super().__init__(scope, id_)
        self.props = props
        self.resource = ResourceGroup(self, "group", name=props.name, location=props.location, tags=props.tags)

    @property
    def name(self) -> str:
        # The resource's attribute (not props.name) so dependents are ordered after the group.
        return self.resource.name

    @property
    def location(self) -> str:
        return self.props.location
