"""Inference logging: off the request path, bounded, retried, and every event accounted for."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from azure.core.credentials import AccessToken
from azure.eventhub import EventDataBatch
from deltalake import DeltaTable
from fastapi.testclient import TestClient
from serve_helpers import future, registered, registry_dir, served, sqlite_uri

from mlkit_workloads.serve.inference_log import InferenceLogger
from mlkit_workloads.serve.runner import build
from mlkit_workloads.serve.settings import InferenceLogSettings
from mlkit_workloads.serve.sinks import DeltaSink, EventHubSink, pack

MODEL = "forecast_logging"


def _body(i=0):
    # I00/I02 are XGBoost groups (need every feature), I01 a statsforecast one (a null feature is fine).
    first, second = future(2)
    return {"group": {"store": "S00", "item": f"I0{i % 3}"},
            "rows": [{"date": first, "promo": i % 2, "holiday": 0},
                     {"date": second, "promo": 0, "holiday": None if i % 3 == 1 else 0}]}


def _accounted(c: dict) -> int:
    return c["delivered"] + c["dropped_queue_full"] + c["dropped_send_failed"] + c["dropped_shutdown"] \
        + c["queued"] + c["in_flight"]


def _build(tmp_path, sink, **log):
    registered(MODEL, 3)
    ss = served(MODEL, alias_poll_seconds=60, inference_log=InferenceLogSettings(**log))
    return build(ss, env="local", cache_dir=tmp_path / "cache", tracking_uri=sqlite_uri(registry_dir()),
                 sink=sink, auth=None)


def test_events_land_in_the_local_delta_table(tmp_path):
    b = _build(tmp_path, DeltaSink(tmp_path / "inference_log"), batch_size=4, flush_seconds=0.2)
    with TestClient(b.app) as c:
        ids = [c.post("/v1/predict", json=_body(i), headers={"X-Request-ID": f"r{i}"}).json()["request_id"]
               for i in range(10)]
    counts = b.logger.counts()
    # One Delta commit per flush interval of whatever is queued (DeltaSink.one_send_per_flush), not per 4.
    assert counts["offered"] == counts["delivered"] == 10 and 1 <= counts["batches"] <= 10
    assert DeltaTable(str(tmp_path / "inference_log")).version() + 1 == counts["batches"]
    df = DeltaTable(str(tmp_path / "inference_log")).to_pandas().sort_values("request_id")
    assert sorted(df.request_id) == sorted(ids)
    row = df[df.request_id == "r1"].iloc[0]
    assert row.model_name == f"mlk_local.ml.{MODEL}" and row.model_version == b.service.current.version
    assert json.loads(row.group) == {"store": "S00", "item": "I01"} and row.n_rows == 2
    inputs = json.loads(row.inputs)
    assert inputs[0]["promo"] == 1.0 and inputs[1]["holiday"] is None and inputs[0]["date"].startswith(future()[0])
    assert len(json.loads(row.outputs)) == 2 and row.latency_ms > 0
    assert str(df.ts.dtype) == "datetime64[us, UTC]"


class DownSink:
    """A sink whose backend is down: every send fails after a delay, like a network timeout."""

    name = "down"

    def __init__(self, delay=0.05):
        self.delay, self.calls = delay, 0

    def send(self, events):
        self.calls += 1
        time.sleep(self.delay)
        raise ConnectionError("sink unreachable")

    def close(self):
        pass


def test_sink_down_requests_succeed_and_every_drop_is_counted(tmp_path):
    sink = DownSink()
    b = _build(tmp_path, sink, queue_size=5, batch_size=2, flush_seconds=0.05, max_retries=2,
               retry_backoff_seconds=0.05)
    with TestClient(b.app) as c:
        started = time.perf_counter()
        statuses = [c.post("/v1/predict", json=_body(i)).status_code for i in range(40)]
        elapsed = time.perf_counter() - started
        metrics = c.get("/metrics").text
    assert statuses == [200] * 40
    assert elapsed < 10  # requests never waited for the sink's retries
    counts = b.logger.counts()
    assert counts["offered"] == 40 and counts["delivered"] == 0
    assert counts["dropped_queue_full"] > 0 and counts["dropped_send_failed"] > 0 and counts["retries"] > 0
    assert _accounted(counts) == 40
    assert 'outcome="dropped_queue_full",sink="down"' in metrics and sink.calls > 0


def test_a_slow_sink_is_retried_until_it_recovers(tmp_path):
    delivered = []

    class Flaky:
        name = "flaky"
        failures = 2

        def send(self, events):
            if self.failures:
                self.failures -= 1
                raise TimeoutError("slow backend")
            delivered.extend(events)

        def close(self):
            pass

    logger = InferenceLogger(Flaky(), queue_size=100, batch_size=10, flush_seconds=0.05, max_retries=3,
                             retry_backoff_seconds=0.01).start()
    for i in range(25):
        assert logger.offer({"request_id": str(i)})
    counts = logger.close()
    assert [e["request_id"] for e in delivered] == [str(i) for i in range(25)]
    assert counts["delivered"] == 25 and counts["retries"] == 2 and _accounted(counts) == 25


def test_events_offered_while_sending_are_accounted_at_every_moment():
    class Slow:
        name = "slow"

        def send(self, events):
            time.sleep(0.01)

        def close(self):
            pass

    logger = InferenceLogger(Slow(), queue_size=50, batch_size=5, flush_seconds=0.01).start()
    snapshots = []

    def produce():
        for i in range(300):
            logger.offer({"i": i})

    t = threading.Thread(target=produce)
    t.start()
    while t.is_alive():
        snapshots.append(logger.counts())
    t.join()
    final = logger.close(timeout=0.05)
    assert all(_accounted(s) <= s["offered"] + 1 for s in snapshots)  # a racing offer may be mid-flight
    assert _accounted(final) == final["offered"] == 300
    assert final["dropped_queue_full"] + final["dropped_shutdown"] > 0


def _closed_counts_add_up(c: dict) -> bool:
    """At shutdown nothing may be queued or in flight: every event delivered or dropped."""
    return c["queued"] == 0 and c["in_flight"] == 0 and c["offered"] == (
        c["delivered"] + c["dropped_queue_full"] + c["dropped_send_failed"] + c["dropped_shutdown"])


def test_a_sink_that_stalls_then_fails_leaves_nothing_unaccounted_at_close():
    """The bench's faulty sink: each send stalls, then fails. Past the close deadline the sender
    must stop taking batches (it used to keep going, leaving a batch in flight at close)."""
    class StallThenFail:
        name = "stall"

        def send(self, events):
            time.sleep(0.2)
            raise TimeoutError("stand-in: the hub timed out")

        def close(self):
            pass

    logger = InferenceLogger(StallThenFail(), queue_size=200, batch_size=10, flush_seconds=0.01, max_retries=1,
                             retry_backoff_seconds=0.01).start()
    for i in range(150):
        logger.offer({"i": i})
    time.sleep(0.05)  # the sender holds a batch
    final = logger.close(timeout=0.3, grace=1.0)
    assert final["offered"] == 150 and _closed_counts_add_up(final), final
    assert final["dropped_send_failed"] > 0 and final["dropped_shutdown"] > 0
    time.sleep(0.5)
    assert logger.counts() == final  # nothing counted twice afterwards


def test_a_sink_hung_past_the_close_deadline_is_counted_dropped_once():
    release = threading.Event()

    class Hung:
        name = "hung"
        delivered = 0

        def send(self, events):
            release.wait(10)
            self.delivered += len(events)

        def close(self):
            pass

    sink = Hung()
    logger = InferenceLogger(sink, queue_size=100, batch_size=10, flush_seconds=0.01).start()
    for i in range(35):
        logger.offer({"i": i})
    time.sleep(0.1)
    started = time.perf_counter()
    final = logger.close(timeout=0.1, grace=0.1)
    assert time.perf_counter() - started < 2  # close does not wait for a hung sink
    assert _closed_counts_add_up(final) and final["delivered"] == 0 and final["dropped_shutdown"] == 35, final
    release.set()  # the stuck send returns "delivered" late: already counted as dropped, not again
    time.sleep(0.3)
    assert sink.delivered == 10 and logger.counts() == final


class FakeToken:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("not-a-real-token", int(time.time()) + 3600)


def _closed_port_host() -> str:
    # The AMQP port (5671) on loopback: nothing listens there on a test machine.
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 5671)) == 0:
            pytest.skip("something listens on 127.0.0.1:5671")
    return "127.0.0.1"


def test_event_hubs_sink_down_is_retried_then_counted(tmp_path):
    """The real azure-eventhub producer against an unreachable namespace (offline boundary)."""
    sink = EventHubSink(_closed_port_host(), "evh-inference-logs", credential=FakeToken())
    b = _build(tmp_path, sink, batch_size=50, flush_seconds=0.05, max_retries=1, retry_backoff_seconds=0.01)
    with TestClient(b.app) as c:
        assert all(c.post("/v1/predict", json=_body(i)).status_code == 200 for i in range(5))
        deadline = time.monotonic() + 20
        while b.logger.counts()["dropped_send_failed"] < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    counts = b.logger.counts()
    assert counts["dropped_send_failed"] == 5 and counts["retries"] >= 1 and _accounted(counts) == 5
    assert "ConnectError" in b.logger.last_error or "onnect" in b.logger.last_error


def test_event_hubs_batches_respect_the_message_size_limit():
    events = [{"request_id": str(i), "inputs": [{"x": "y" * 900}]} for i in range(30)]
    batches = pack(events, lambda: EventDataBatch(max_size_in_bytes=8_000))
    assert sum(len(b) for b in batches) == 30 and len(batches) > 1
    assert all(b.size_in_bytes <= 8_000 for b in batches)
    with pytest.raises(ValueError, match="larger than one Event Hubs message"):
        pack([{"request_id": "huge", "x": "z" * 20_000}], lambda: EventDataBatch(max_size_in_bytes=8_000))


def test_rejected_requests_are_logged_with_their_status_and_a_wrong_content_type_is_415(tmp_path):
    from deltalake import write_deltalake

    from mlkit_workloads.inference_event import event_table

    log_path = tmp_path / "inference_log"
    # A table written before the status/error columns existed keeps taking events.
    old = event_table([{"request_id": "old", "ts": "2024-01-01T00:00:00+00:00", "env": "local", "model_name": MODEL,
                        "model_version": "1", "group_key": "S00|I00", "group": {"store": "S00", "item": "I00"},
                        "inputs": [{"date": "2023-12-31", "promo": 0, "holiday": 0}], "outputs": [1.0],
                        "latency_ms": 1.0}]).drop(["status", "error"])
    write_deltalake(str(log_path), old)
    b = _build(tmp_path, DeltaSink(log_path), batch_size=50, flush_seconds=0.1, max_retries=1)
    with TestClient(b.app) as c:
        ok = c.post("/v1/predict", json=_body(1), headers={"X-Request-ID": "ok"})
        wrong_type = c.post("/v1/predict", content=json.dumps(_body(1)), headers={
            "content-type": "text/plain", "X-Request-ID": "plain"})
        unknown = c.post("/v1/predict", json={**_body(1), "group": {"store": "NOPE", "item": "I01"}},
                         headers={"X-Request-ID": "unknown"})
        bad_field = c.post("/v1/predict", json={"group": {"store": "S00"}, "rows": []}, headers={"X-Request-ID": "bad"})
        too_big = c.post("/v1/predict", content=b"{" + b" " * (b.settings.max_body_bytes + 10) + b"}",
                         headers={"content-type": "application/json", "X-Request-ID": "big"})
    assert ok.status_code == 200
    assert wrong_type.status_code == 415 and wrong_type.json()["error"]["code"] == "unsupported_media_type"
    assert "text/plain" in wrong_type.json()["error"]["message"]
    assert (unknown.status_code, bad_field.status_code, too_big.status_code) == (404, 422, 413)
    assert b.logger.counts()["delivered"] == 5
    df = DeltaTable(str(log_path)).to_pandas().set_index("request_id")
    assert df.loc["ok", "status"] == 200 and df.loc["ok", "n_rows"] == 2
    got = {rid: (int(df.loc[rid, "status"]), df.loc[rid, "error"]) for rid in ("plain", "unknown", "bad", "big")}
    assert got == {"plain": (415, "unsupported_media_type"), "unknown": (404, "unknown_group"),
                   "bad": (422, "invalid_request"), "big": (413, "body_too_large")}
    assert json.loads(df.loc["unknown", "group"]) == {"store": "NOPE", "item": "I01"}
    assert df.loc["plain", "inputs"] == "[]" and df.loc["plain", "model_version"] == b.service.current.version
    assert "old" in df.index  # the older rows are still there, their status empty

    # The monitor job counts only served rows: rejected requests have no inputs or predictions.
    import pandas as pd

    from mlkit_workloads.monitor.data import served_rows

    rows = served_rows(df.reset_index(), pd.Timestamp("2000-01-01", tz="UTC"))
    assert len(rows) == 2 + 1  # the 200's two rows + the old table's row


def test_two_delta_sinks_on_one_table_keep_every_event(tmp_path):
    """Each sink keeps its table open between commits; another writer's commits must not be lost
    (two uvicorn workers log to one local table)."""
    from mlkit_workloads.inference_event import inference_event

    path = tmp_path / "log"
    a, b = DeltaSink(path), DeltaSink(path)
    for i in range(3):
        for sink, who in ((a, "a"), (b, "b")):
            sink.send([inference_event(f"{who}{i}-{k}", "local", "m", "1", 0.1, outputs=[1.0]) for k in range(5)])
    ids = sorted(DeltaTable(str(path)).to_pyarrow_table(columns=["request_id"]).column(0).to_pylist())
    assert ids == sorted(f"{w}{i}-{k}" for w in "ab" for i in range(3) for k in range(5))


def test_a_sink_with_costly_sends_gets_one_send_per_flush_of_everything_queued():
    sends = []

    class Commits:
        name = "commits"
        one_send_per_flush = True  # as DeltaSink: each send is a commit

        def send(self, events):
            sends.append(len(events))

        def close(self):
            pass

    logger = InferenceLogger(Commits(), queue_size=1000, batch_size=10, flush_seconds=0.3).start()
    time.sleep(0.05)
    for i in range(95):  # well over batch_size, within one flush interval
        logger.offer({"i": i})
    time.sleep(0.6)
    final = logger.close()
    assert sends[0] == 95 and sum(sends) == 95 and final["delivered"] == 95 and _closed_counts_add_up(final)
    assert DeltaSink.one_send_per_flush and not EventHubSink.one_send_per_flush
