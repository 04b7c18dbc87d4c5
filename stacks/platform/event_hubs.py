"""Event Hubs for inference logs: the scoring service sends, Capture archives, the monitoring job reads.

Capture writes every event of the inference-log hub as Avro into the data lake's inference-logs
container, with the namespace's own (system-assigned) identity; the monitoring job reads that
archive (``mlkit_workloads.monitor.capture``). The layout below is the contract between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from cdktn_provider_azurerm.eventhub import (
    Eventhub,
    EventhubCaptureDescription,
    EventhubCaptureDescriptionDestination,
)
from cdktn_provider_azurerm.eventhub_consumer_group import EventhubConsumerGroup
from cdktn_provider_azurerm.eventhub_namespace import EventhubNamespace, EventhubNamespaceIdentity
from cdktn_provider_azurerm.role_assignment import RoleAssignment
from constructs import Construct

from envconfig.naming import Names

from ..errors import StackInputError
from .roles import EVENT_HUBS_DATA_SENDER, assign_role

# Capture's archive: one of the data lake's containers, files named as below. The monitoring job
# reads everything under capture_prefix() recursively, so only the leading {Namespace}/{EventHub}
# part is relied on; the date parts keep listings per hour small.
# The container is one of Names.CONTAINERS (grant_blob_write refuses any other, naming it).
CAPTURE_CONTAINER = "inference-logs"
ARCHIVE_NAME_FORMAT = "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"
# Azure's limits for Capture windows (azurerm validates the same ranges at plan time).
CAPTURE_INTERVAL_RANGE = (60, 900)
CAPTURE_SIZE_RANGE = (10 * 2**20, 500 * 2**20)


def capture_prefix(names: Names) -> str:
    """Container-relative folder where Capture writes this environment's inference-log hub."""
    return f"{names.eventhub_namespace}/{names.eventhub_inference_logs}"


class CaptureStorage(Protocol):
    """What Capture needs of the data lake: its id and a write grant on one container."""

    @property
    def id(self) -> str: ...

    def grant_blob_write(self, id_: str, principal_id: str, container: str) -> RoleAssignment: ...


@dataclass(frozen=True)
class CaptureProps:
    storage: CaptureStorage
    container: str = CAPTURE_CONTAINER
    # A file per partition every 5 minutes (or per 100 MiB): the monitoring job runs daily, and
    # files this size decode in one piece on a worker.
    interval_seconds: int = 300
    size_limit_bytes: int = 100 * 2**20
    # Quiet windows write no files instead of header-only ones.
    skip_empty_archives: bool = True

    def __post_init__(self) -> None:
        lo, hi = CAPTURE_INTERVAL_RANGE
        if not lo <= self.interval_seconds <= hi:
            raise StackInputError("event_hubs capture interval", f"{self.interval_seconds} s is outside {lo}-{hi} s")
        lo, hi = CAPTURE_SIZE_RANGE
        if not lo <= self.size_limit_bytes <= hi:
            raise StackInputError("event_hubs capture size limit",
                                  f"{self.size_limit_bytes} bytes is outside {lo}-{hi} bytes")


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
    capture: CaptureProps | None = None


class InferenceLogHub(Construct):
    def __init__(self, scope: Construct, id_: str, props: InferenceLogHubProps):
        super().__init__(scope, id_)
        self.props = props
        capture = props.capture
        if capture and props.sku == "Basic":
            raise StackInputError("event_hubs.sku", "Event Hubs Capture needs the Standard or Premium tier, "
                                                    "and the monitoring job reads the inference log from Capture")
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
            # Capture writes to storage as the namespace itself: no storage key or SAS anywhere.
            identity=EventhubNamespaceIdentity(type="SystemAssigned") if capture else None,
            tags=props.tags,
        )
        self.capture_grant: RoleAssignment | None = None
        if capture:
            self.capture_grant = capture.storage.grant_blob_write(
                "eventhubs-capture-write", self.namespace.identity.principal_id, capture.container)
        self.hub = Eventhub(
            self, "hub",
            name=props.hub_name,
            namespace_id=self.namespace.id,
            partition_count=props.partition_count,
            message_retention=props.message_retention_days,
            capture_description=self._capture_description(capture) if capture else None,
            # Azure checks the destination when Capture is switched on: the grant must exist first.
            depends_on=[self.capture_grant] if self.capture_grant else None,
        )
        self.consumer_group = EventhubConsumerGroup(
            self, "consumer-group",
            name=props.consumer_group_name,
            namespace_name=self.namespace.name,
            eventhub_name=self.hub.name,
            resource_group_name=props.resource_group_name,
        )

    @staticmethod
    def _capture_description(capture: CaptureProps) -> EventhubCaptureDescription:
        return EventhubCaptureDescription(
            enabled=True,
            encoding="Avro",  # plain Avro: readable by fastavro and Spark without a codec
            interval_in_seconds=capture.interval_seconds,
            size_limit_in_bytes=capture.size_limit_bytes,
            skip_empty_archives=capture.skip_empty_archives,
            destination=EventhubCaptureDescriptionDestination(
                name="EventHubArchive.AzureBlockBlob",
                archive_name_format=ARCHIVE_NAME_FORMAT,
                blob_container_name=capture.container,
                storage_account_id=capture.storage.id,
                # The default (StorageSAS) needs the account key, which the data lake has disabled.
                storage_authentication_type="SystemAssigned",
            ),
        )

    def grant_send(self, id_: str, principal_id: str) -> None:
        """Send to the inference-log hub only (not the namespace, not listen)."""
        assign_role(self, id_, role=EVENT_HUBS_DATA_SENDER, resource_id=self.hub.id, principal_id=principal_id)
