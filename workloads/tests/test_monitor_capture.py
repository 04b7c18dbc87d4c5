"""The monitoring job's cloud path on real local engines: the service's Event Hubs sink packs events
(real azure-eventhub EventData), they land as real Avro files in Event Hubs Capture's schema and
folder layout, and the job reads them with Spark binaryFile + fastavro into the same PSI core."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import time
from pathlib import Path

import fastavro
import pandas as pd
import pytest
from azure.eventhub import EventDataBatch
from fastapi.testclient import TestClient
from serve_helpers import (HORIZON, registered_with_metrics, registry_dir, serve_shifted_traffic, served, sqlite_uri,
                           training_table)

from mlkit_workloads.context import LocalTaskContext
from mlkit_workloads.errors import WorkloadError
from mlkit_workloads.monitor import job as monitor
from mlkit_workloads.monitor.capture import (
    CAPTURE_SCHEMA,
    CaptureFileError,
    archive_table,
    decode_archive,
    read_capture,
)
from mlkit_workloads.monitor.settings import MonitoringSettings
from mlkit_workloads.runtime import Runtime
from mlkit_workloads.inference_event import to_json
from mlkit_workloads.serve.runner import build
from mlkit_workloads.serve.sinks import EventHubSink
from mlkit_workloads.settings import Tracking, WorkloadSettings
from mlkit_workloads.tables import DeltaRsStore

NAMESPACE, HUB = "evhns-mlk-test-weu", "evh-inference-logs"


# --------------------------------------------------------------------------- Capture, as files


def capture_bytes(bodies: list[bytes], first_seq: int = 0, sync_interval: int = 16000) -> bytes:
    """One Capture Avro file holding ``bodies`` (records as Event Hubs Capture writes them)."""
    now = dt.datetime.now(dt.timezone.utc)
    records = [{
        "SequenceNumber": first_seq + i, "Offset": str(4096 * (first_seq + i)),
        "EnqueuedTimeUtc": f"{now.month}/{now.day}/{now.year} {now:%I:%M:%S %p}",
        "SystemProperties": {"x-opt-sequence-number": first_seq + i, "x-opt-enqueued-time": int(now.timestamp() * 1000)},
        "Properties": {}, "Body": body,
    } for i, body in enumerate(bodies)]
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(CAPTURE_SCHEMA), records, sync_interval=sync_interval)
    return buf.getvalue()


def archive_path(root: Path, partition: int, when: dt.datetime) -> Path:
    """Capture's archive_name_format: {Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}."""
    return root / NAMESPACE / HUB / str(partition) / f"{when:%Y/%m/%d/%H/%M/%S}.avro"


def write_archive(root: Path, bodies_by_partition: dict[int, list[bytes]]) -> list[Path]:
    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    paths = []
    for partition, bodies in bodies_by_partition.items():
        path = archive_path(root, partition, when)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(capture_bytes(bodies, first_seq=100 * partition))
        paths.append(path)
    return paths


class RecordingBatch(EventDataBatch):
    """A real EventDataBatch (size limit enforced by the SDK) that remembers what was added."""

    def __init__(self):
        super().__init__(max_size_in_bytes=256 * 1024)
        self.added = []

    def add(self, event_data):
        super().add(event_data)
        self.added.append(event_data)


class HubStandIn:
    """The Event Hub the service's EventHubSink sends to: keeps every message body it was sent."""

    def __init__(self, **client_kwargs):
        self.bodies: list[bytes] = []

    def create_batch(self):
        return RecordingBatch()

    def send_batch(self, batch):
        self.bodies += [b"".join(e.body) for e in batch.added]

    def close(self):
        pass


def event(i: int, ts: str | None = None) -> dict:
    return {"request_id": f"r{i}", "ts": ts or dt.datetime.now(dt.timezone.utc).isoformat(), "env": "dev",
            "model_name": "forecast", "model_version": "3", "group_key": '["S00","I00"]',
            "group": {"store": "S00", "item": "I00"}, "inputs": [{"date": "2024-01-01", "promo": 1.0}],
            "outputs": [2.5], "latency_ms": 1.5}


# --------------------------------------------------------------------------- decoding one file


def test_capture_file_round_trips_the_services_events():
    events = [event(i) for i in range(5)]
    data = capture_bytes([to_json(e).encode() for e in events], sync_interval=64)  # several Avro blocks
    assert decode_archive("a.avro", data) == json.loads(json.dumps(events))
    table = archive_table("a.avro", data).to_pandas()
    assert table["request_id"].tolist() == [f"r{i}" for i in range(5)] and table["_error"].isna().all()
    assert table["n_rows"].tolist() == [1] * 5 and str(table["ts"].dt.tz) == "UTC"
    # Capture with skip_empty_archives off writes header-only files for quiet windows: zero events.
    assert decode_archive("quiet.avro", capture_bytes([])) == []


def test_unreadable_capture_files_are_named_with_what_is_wrong():
    good = [to_json(event(i)).encode() for i in range(40)]
    with pytest.raises(CaptureFileError, match=r"^p/0\.avro: empty file \(0 bytes\), not an Avro archive$"):
        decode_archive("p/0.avro", b"")
    with pytest.raises(CaptureFileError, match=r"^p/1\.avro: not an Avro container file"):
        decode_archive("p/1.avro", b'{"this": "is json, not avro"}')
    other = io.BytesIO()
    fastavro.writer(other, {"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]}, [{"x": 1}])
    with pytest.raises(CaptureFileError, match=r"not an Event Hubs Capture archive: its schema has no SequenceNumber"):
        decode_archive("p/2.avro", other.getvalue())
    with pytest.raises(CaptureFileError, match=r"p/3\.avro: event with SequenceNumber 2: body is not an inference "
                                               r"event: not UTF-8 JSON"):
        decode_archive("p/3.avro", capture_bytes([good[0], good[1], b"\xff\xfe garbage"]))
    with pytest.raises(CaptureFileError, match=r"event with SequenceNumber 0: body is not an inference event: no ts"):
        decode_archive("p/4.avro", capture_bytes([json.dumps({"request_id": "x"}).encode()]))
    whole = capture_bytes(good, sync_interval=256)
    with pytest.raises(CaptureFileError, match=r"p/5\.avro: unreadable after \d+ event\(s\)"):
        decode_archive("p/5.avro", whole[: len(whole) * 2 // 3])
    bad = archive_table("p/0.avro", b"").to_pandas()  # as the Spark workers report it: one row, no events
    assert len(bad) == 1 and bad["request_id"].isna().all() and "empty file" in bad["_error"].iloc[0]


# --------------------------------------------------------------------------- the reader on Spark


def test_reader_lists_only_avro_files_modified_in_the_window(tmp_path, spark):
    root = tmp_path / "inference-logs"
    write_archive(root, {0: [to_json(event(i)).encode() for i in range(3)],
                         1: [to_json(event(i)).encode() for i in range(3, 5)]})
    (root / NAMESPACE / HUB / "0" / "notes.json").write_text("{}")  # not *.avro: never read
    # A corrupt archive last modified long before the window: outside it, so never even opened.
    old = archive_path(root, 1, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    old.parent.mkdir(parents=True)
    old.write_bytes(b"corrupt")
    os.utime(old, (time.time() - 30 * 86400,) * 2)
    since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=7)
    events = read_capture(spark, str(root / NAMESPACE / HUB), since)
    assert sorted(events["request_id"]) == [f"r{i}" for i in range(5)]
    assert str(events["ts"].dt.tz) == "UTC" and (events["ts"] >= since).all()
    # Nothing captured yet (no folder at all): no events, no error.
    assert read_capture(spark, str(tmp_path / "never-written"), since).empty
    # The old file inside the window: the reader opens it and says which file is broken.
    with pytest.raises(WorkloadError, match=rf"1 unreadable Event Hubs Capture file\(s\), nothing was written:\n"
                                            rf"  - file:{old}: not an Avro container file"):
        read_capture(spark, str(root), pd.Timestamp("2019-12-01", tz="UTC"))


# --------------------------------------------------------------------------- the job end to end


def served_through_event_hubs(tmp_path: Path, store: DeltaRsStore) -> tuple[str, str, list[bytes]]:
    """Train-table + registered model; the service serves two groups and logs through its EventHubSink."""
    table_version = training_table(store)
    name = f"forecast_capture_{tmp_path.name[-12:]}"
    version = registered_with_metrics(store, name, table_version)
    hub = HubStandIn()
    sink = EventHubSink(f"{NAMESPACE}.servicebus.windows.net", HUB, credential=object(),
                        client_factory=lambda **kw: hub)
    built = build(served(name, alias_poll_seconds=60), env="dev", cache_dir=tmp_path / "cache", tracking_uri=sqlite_uri(registry_dir()),
                  sink=sink, auth=None)
    with TestClient(built.app) as c:
        serve_shifted_traffic(c)
    assert built.logger.counts()["delivered"] == 36 and len(hub.bodies) == 36
    return name, version, hub.bodies


def test_monitor_reads_the_capture_archive_and_flags_the_shifted_feature(tmp_path, experiment_prefix, spark):
    store = DeltaRsStore(tmp_path / "tables")
    (tmp_path / "tables").mkdir()
    name, version, bodies = served_through_event_hubs(tmp_path, store)
    root = tmp_path / "inference-logs"
    write_archive(root, {0: bodies[0::2], 1: bodies[1::2]})  # the hub spreads events over its partitions
    quiet = archive_path(root, 1, dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5))
    quiet.parent.mkdir(parents=True, exist_ok=True)
    quiet.write_bytes(capture_bytes([]))  # a header-only archive of a quiet window

    capture = str(root / NAMESPACE / HUB)
    settings = WorkloadSettings(tracking=Tracking(experiment_prefix=experiment_prefix), forecast={"registered_model": name},
                                monitoring=MonitoringSettings(capture_path=capture))
    ctx = LocalTaskContext("monitor")
    out = monitor.run(Runtime(env="dev", settings=settings, spark=spark, tables=store, context=ctx))

    assert not (tmp_path / "tables" / "inference_log").exists()  # the rows came from the archive only
    assert out["inference_source"] == capture
    assert out["served_rows"] == 3 * 12 * HORIZON and out["model_versions"] == [version]
    assert out["drifted_features"] == ["promo"]  # promo forced to 1 for half the XGBoost traffic; holiday untouched
    assert out["drifted_groups"] == ["S00/I02"]
    results = store.read_pandas("monitoring_results")
    feats = results[results.kind == "feature"].set_index("subject")
    assert feats.loc["promo", "psi"] > 0.2 and feats.loc["holiday", "psi"] < 0.2
    assert feats.loc["promo", "n_cur"] == 2 * 12 * HORIZON
    assert f"inferences from**: {capture}" in Path(out["report"]).read_text()


def test_monitor_stops_on_unreadable_capture_files_and_writes_nothing(tmp_path, experiment_prefix, spark):
    store = DeltaRsStore(tmp_path / "tables")
    (tmp_path / "tables").mkdir()
    root = tmp_path / "inference-logs"
    good = [to_json(event(i)).encode() for i in range(30)]
    (ok,) = write_archive(root, {0: good})
    # Second 30, so the empty archive below ("00.avro", the same minute) is always another file.
    truncated = archive_path(root, 1, dt.datetime.now(dt.timezone.utc).replace(second=30, microsecond=0))
    truncated.parent.mkdir(parents=True)
    whole = capture_bytes(good, sync_interval=256)
    truncated.write_bytes(whole[: len(whole) // 2])
    empty = truncated.with_name("00.avro")
    empty.write_bytes(b"")

    settings = WorkloadSettings(tracking=Tracking(experiment_prefix=experiment_prefix),
                                monitoring=MonitoringSettings(capture_path=str(root)))
    rt = Runtime(env="dev", settings=settings, spark=spark, tables=store, context=LocalTaskContext("monitor"))
    with pytest.raises(WorkloadError) as err:
        monitor.run(rt)
    text = str(err.value)
    assert text.startswith(f"{root}: 2 unreadable Event Hubs Capture file(s), nothing was written:")
    assert f"file:{empty}: empty file (0 bytes)" in text and f"file:{truncated}: unreadable after" in text
    assert str(ok) not in text and "Traceback" not in text
    assert list((tmp_path / "tables").iterdir()) == []  # no monitoring table, no report
    assert not (tmp_path / "reports").exists()
