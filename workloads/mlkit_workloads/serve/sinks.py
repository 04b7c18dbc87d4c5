"""Where inference events go: a local Delta table (``local``) or Azure Event Hubs (cloud).

Both take a batch and either deliver all of it or raise; the logger does retries and counting.
The Delta table's schema is what the monitoring job reads; Event Hubs gets the same event as
JSON (one message per event), so a capture or stream of it lands the same columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from ..inference_event import event_table, to_json


class DeltaSink:
    """Appends each batch as one Delta commit (delta-rs): versioned, readable by Spark and pandas.

    The table stays open between commits: writing to a path reads the table's log again each time,
    half of a 200-event commit's cost (12 vs 7 ms CPU measured); the open table is brought up to date
    by each commit (and by delta-rs's conflict check when another writer committed meanwhile)."""

    name = "delta"
    # One commit per flush interval: at 2,000 requests/s, 200-event commits were 10 a second, ~10 % of
    # the service's CPU and 36,000 small files an hour for the monitor to read (bench/serving.py).
    one_send_per_flush = True

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._table = None

    def send(self, events: list[dict[str, Any]]) -> None:
        from deltalake import DeltaTable, write_deltalake

        # merge: a table written before the status/error columns existed takes them on (older rows: null)
        if self._table is None:
            write_deltalake(self.path, event_table(events), mode="append", schema_mode="merge")
            self._table = DeltaTable(self.path)
            return
        try:
            write_deltalake(self._table, event_table(events), mode="append", schema_mode="merge")
        except Exception:
            self._table = None  # e.g. the table was replaced under us: the next batch opens it again
            raise

    def close(self) -> None:
        pass


def pack(events: Iterable[dict[str, Any]], new_batch: Callable[[], Any]) -> list[Any]:
    """Events -> as few EventDataBatch objects as fit (each under the hub's message size limit)."""
    from azure.eventhub import EventData

    batches: list[Any] = []
    current = None
    for event in events:
        data = EventData(to_json(event))
        data.content_type = "application/json"
        for _ in range(2):
            if current is None:
                current = new_batch()
                batches.append(current)
            try:
                current.add(data)
                break
            except ValueError:  # batch full: start a new one; an event alone too big is an error
                if len(current) == 0:
                    raise ValueError(f"inference event {event.get('request_id')} is larger than one Event Hubs "
                                     f"message ({current.max_size_in_bytes} bytes)") from None
                current = None
    return batches


class EventHubSink:
    """Azure Event Hubs with Entra ID (DefaultAzureCredential: the pod's workload identity).

    The namespace has local (SAS) auth disabled, so there is no connection string anywhere.
    ``retry_total=0``: the logger owns retries and counting; the SDK must not retry on its own
    behind its back (a request would never be stuck on it either way, the sender is a thread).
    """

    name = "eventhubs"
    one_send_per_flush = False  # batch_size events per send, packed into hub-sized message batches

    def __init__(self, fully_qualified_namespace: str, eventhub_name: str, credential=None,
                 client_factory: Callable[..., Any] | None = None, **client_kwargs: Any):
        from azure.eventhub import EventHubProducerClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        factory = client_factory or EventHubProducerClient
        self.client = factory(fully_qualified_namespace=fully_qualified_namespace, eventhub_name=eventhub_name,
                              credential=credential, retry_total=0, **client_kwargs)

    def send(self, events: list[dict[str, Any]]) -> None:
        for batch in pack(events, self.client.create_batch):
            self.client.send_batch(batch)

    def close(self) -> None:
        self.client.close()
