"""Container registry for the scoring image: no admin user, no anonymous pull, Entra ID pulls only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cdktn_provider_azurerm.container_registry import ContainerRegistry
from constructs import Construct

from policies.suppressions import suppress

from ..errors import StackInputError
from .roles import ACR_PULL, assign_role


UNTAGGED_RETENTION_DAYS = 7


@dataclass(frozen=True)
class ImageRegistryProps:
    name: str
    resource_group_name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)
    sku: Literal["Basic", "Standard", "Premium"] = "Premium"
    public_network_access: bool = False


class ImageRegistry(Construct):
    def __init__(self, scope: Construct, id_: str, props: ImageRegistryProps):
        super().__init__(scope, id_)
        if not props.public_network_access and props.sku != "Premium":
            # Azure only lets Premium registries turn public access off; fail at synth, not at apply.
            raise StackInputError("container_registry.sku",
                                  f"{props.sku} registries can't disable public network access; use Premium "
                                  "or set container_registry.public_network_access: true")
        self.props = props
        premium = props.sku == "Premium"
        self.registry = ContainerRegistry(
            self, "registry",
            name=props.name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            sku=props.sku,
            admin_enabled=False,
            anonymous_pull_enabled=False,
            public_network_access_enabled=props.public_network_access,
            # Premium-only hardening: zone-redundant, own data endpoints, untagged manifests expire.
            zone_redundancy_enabled=premium,
            data_endpoint_enabled=premium,
            retention_policy_in_days=UNTAGGED_RETENTION_DAYS if premium else None,
            tags=props.tags,
        )
        suppress(self.registry, "CKV_AZURE_164",
                 "Docker Content Trust is being retired by Azure; images are pushed only by CI with its "
                 "federated identity and pulled by digest-pinned deployments.")
        suppress(self.registry, "CKV_AZURE_165",
                 "Single-region platform: AKS runs in the registry's region, so geo-replication would add cost "
                 "without a consumer; zone redundancy covers zone failures.")
        suppress(self.registry, "CKV_AZURE_166",
                 "Quarantine blocks every pull until a scanner marks the image verified; there is no such "
                 "scanner step in the pipeline yet, and CI is the only pusher.")

    @property
    def id(self) -> str:
        return self.registry.id

    @property
    def login_server(self) -> str:
        return self.registry.login_server

    def grant_pull(self, id_: str, principal_id: str) -> None:
        assign_role(self, id_, role=ACR_PULL, resource_id=self.registry.id, principal_id=principal_id)
