"""Event Hubs for inference logs: the scoring service sends, the monitoring job reads its own group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cdktn_provider_azurerm.eventhub import Eventhub
from cdktn_provider_azurerm.eventhub_consumer_group import EventhubConsumerGroup
from cdktn_provider_azurerm.eventhub_namespace import EventhubNamespace
from constructs import Construct

from .roles import EVENT_HUBS_DATA_SENDER, assign_role


@dataclass(frozen=True)
class InferenceLogHubProps:
    namespace_name: str
    hub_name: str
    consumer_group_name: str
    resource_group_name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)
    sku: Literal["Basic", "Standard", "Premium"] = "Standard"
    capacity: int = 1
    partition_count: int = 2
    message_retention_days: int = 1


class InferenceLogHub(Construct):
    def __init__(self, scope: Construct, id_: str, props: InferenceLogHubProps):
        super().__init__(scope, id_)
        self.props = props
        self.namespace = EventhubNamespace(
            self, "namespace",
            name=props.namespace_name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            sku=props.sku,
            capacity=props.capacity,
            minimum_tls_version="1.2",
            # Entra ID only: no SAS connection strings to leak.
            local_authentication_enabled=False,
            tags=props.tags,
        )
        self.hub = Eventhub(
            self, "hub",
            name=props.hub_name,
            namespace_id=self.namespace.id,
            partition_count=props.partition_count,
            message_retention=props.message_retention_days,
        )
        self.consumer_group = EventhubConsumerGroup(
            self, "consumer-group",
            name=props.consumer_group_name,
            namespace_name=self.namespace.name,
            eventhub_name=self.hub.name,
            resource_group_name=props.resource_group_name,
        )

    def grant_send(self, id_: str, principal_id: str) -> None:
        """Send to the inference-log hub only (not the namespace, not listen)."""
        assign_role(self, id_, role=EVENT_HUBS_DATA_SENDER, resource_id=self.hub.id, principal_id=principal_id)
