"""Traces (FastAPI's native OpenTelemetry instrumentation, the SDK's in-memory exporter) and JSON-lines logs
with the request id."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_helpers import future, registered, registered_classifier, registry_dir, served, sqlite_uri

from mlkit_workloads.serve.runner import build
from mlkit_workloads.serve.telemetry import JsonLines, TelemetryError, tracer_provider

FORECAST, CLASSIFIER = "forecast_traced", "classifier_traced"
BROKEN = ("S00", "I03")


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    registered(FORECAST, 4, broken=(BROKEN,))
    registered_classifier(CLASSIFIER)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    b = build(served(FORECAST, CLASSIFIER, alias_poll_seconds=60), env="local", cache_dir=tmp_path_factory.mktemp("t"),
              tracking_uri=sqlite_uri(registry_dir()), sink=None, auth=None, tracer_provider=provider)
    with TestClient(b.app) as c:
        yield b, c, exporter


def _span(exporter, rid: str):
    spans = [s for s in exporter.get_finished_spans() if s.attributes.get("mlkit.request_id") == rid]
    assert len(spans) == 1, " ".join(f"{s.name}: {sorted(s.attributes)}" for s in exporter.get_finished_spans())
    return spans[0]


def test_one_span_per_request_with_model_group_version_and_outcome(traced):
    b, c, exporter = traced
    exporter.clear()
    body = {"group": {"store": "S00", "item": "I01"}, "rows": [{"date": future()[0]}]}
    r = c.post("/v1/models/forecast/predict", json=body, headers={"x-request-id": "fc-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "fc-1"
    span = _span(exporter, "fc-1")
    assert span.attributes["mlkit.model"] == "forecast" and span.attributes["mlkit.group"] == "S00/I01"
    assert span.attributes["mlkit.version"] == b.services["forecast"].current.version
    assert span.attributes["mlkit.outcome"] == "ok" and span.attributes["http.route"] == "/v1/models/forecast/predict"
    # Only the server span: no per-message receive/send or per-operation spans.
    assert len(exporter.get_finished_spans()) == 1

    rows = {"rows": [{"student": "No", "balance": 800.0, "income": 40000.0}]}
    assert c.post("/v1/models/classifier/predict", json=rows, headers={"x-request-id": "cl-1"}).status_code == 200
    span = _span(exporter, "cl-1")
    assert span.attributes["mlkit.model"] == "classifier" and "mlkit.group" not in span.attributes
    assert span.attributes["mlkit.version"] == b.services["classifier"].current.version

    r = c.post("/v1/models/forecast/predict", json={**body, "group": {"store": "S99", "item": "I01"}},
               headers={"x-request-id": "fc-404"})
    assert r.status_code == 404 and _span(exporter, "fc-404").attributes["mlkit.outcome"] == "unknown_group"
    c.get("/healthz")
    assert not [s for s in exporter.get_finished_spans() if s.attributes.get("http.route") == "/healthz"]


def test_logs_are_json_lines_with_the_request_id(traced):
    _, c, _ = traced
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("mlkit.serve")
    logger.addHandler(handler)
    try:
        body = {"group": {"store": BROKEN[0], "item": BROKEN[1]}, "rows": [{"date": future()[0]}]}
        r = c.post("/v1/models/forecast/predict", json=body, headers={"x-request-id": "broken-7"})
        assert r.status_code == 503
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (line,) = [x for x in lines if "failed to load" in x["message"]]
    assert line["request_id"] == "broken-7" and line["level"] == "WARNING" and line["logger"] == "mlkit.serve"
    assert line["ts"].endswith("Z")


def test_the_exporter_comes_from_the_environment():
    assert tracer_provider("none", "svc") is None
    assert tracer_provider("console", "svc") is not None
    with pytest.raises(TelemetryError, match="APPLICATIONINSIGHTS_CONNECTION_STRING"):
        tracer_provider("azure_monitor", "svc", env={})
    conn = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/"
    class NoToken:  # the exporter only asks for a token when it sends (nothing is sent here)
        def get_token(self, *scopes, **kw):
            raise AssertionError("no token is asked for when nothing is sent")

    provider = tracer_provider("azure_monitor", "svc", env={"APPLICATIONINSIGHTS_CONNECTION_STRING": conn},
                               credential=NoToken())
    exporters = [type(p.span_exporter).__name__ for p in provider._active_span_processor._span_processors]
    assert exporters == ["AzureMonitorTraceExporter"]
    provider.shutdown()
