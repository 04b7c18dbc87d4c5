"""Traces and logs of the service, by the field's libraries.

Traces: FastAPI's own OpenTelemetry instrumentation (``FastAPI(telemetry=...)``, native since
FastAPI 0.165), one server span per request with the route and status; the handlers add the model,
its version, the group (forecast) and the outcome. Not the separate
opentelemetry-instrumentation-fastapi middleware: the same span cost ~0.25 ms per request through
it and ~0.1 ms natively (measured in-process with the SDK's in-memory exporter). Where spans go is the environment's
``workloads.serving.telemetry.traces``: ``none`` (no tracer at all: nothing is recorded), ``console``
(JSON spans on stdout, local), ``azure_monitor`` (Application Insights, cloud: the connection
string comes from ``APPLICATIONINSIGHTS_CONNECTION_STRING``, which the container fills at start
from the Key Vault secret the Deployment names, read with the pod's workload identity; it is never
in a setting, a manifest or Terraform state). Tests pass their
own provider (the SDK's in-memory exporter).

Logs: one JSON object per line, with the request id of the request being answered (if any).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from .middleware import current_request_id

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# Probes and scrapes are not traced: they would outnumber the requests.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class TelemetryError(RuntimeError):
    pass


def tracer_provider(traces: str, service_name: str, sample_ratio: float = 1.0, env: dict[str, str] | None = None,
                    credential=None):
    """The provider for ``traces`` (None for ``none``: the app is not instrumented)."""
    if traces == "none":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                              sampler=ParentBasedTraceIdRatio(sample_ratio))
    if traces == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif traces == "azure_monitor":
        conn = (env if env is not None else os.environ).get(CONNECTION_STRING_ENV)
        if not conn:
            raise TelemetryError(f"workloads.serving.telemetry.traces is 'azure_monitor' but {CONNECTION_STRING_ENV} "
                                 "is not set (the Deployment reads it from the Key Vault secret)")
        from azure.identity import DefaultAzureCredential
        from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

        # Application Insights has local authentication off: the connection string says where, the
        # pod's workload identity (Monitoring Metrics Publisher) is what lets it send.
        exporter = AzureMonitorTraceExporter(connection_string=conn, credential=credential or DefaultAzureCredential(
            exclude_interactive_browser_credential=True))
        provider.add_span_processor(BatchSpanProcessor(exporter))
    else:
        raise TelemetryError(f"unknown traces exporter {traces!r}")
    return provider


def telemetry_config(provider) -> dict[str, Any]:
    """FastAPI's native telemetry: one server span per request to ``provider`` (None: nothing traced).
    Only the provider given here, never a global one or exporters from environment variables; no
    operation spans (dependencies, serialization: several per request) and no OpenTelemetry metrics
    or logs (metrics are Prometheus', logs JSON lines)."""
    off = {"metrics": False, "logs": False, "auto_configure": False}
    if provider is None:
        return {**off, "tracing": False}
    return {**off, "tracing": True, "tracer_provider": provider, "operation_spans": False,
            "exclude": lambda scope: scope.get("path") in UNTRACED_PATHS}


def annotate(**attributes: Any) -> None:
    """Set ``mlkit.<name>`` attributes on the request's span (nothing when it is not recorded)."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"mlkit.{k}": v for k, v in attributes.items() if v is not None})


class JsonLines(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id"?, "exc"?}`` per line."""

    converter = time.gmtime  # timestamps in UTC, as the Z says

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        rid = current_request_id.get()
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def json_logging(level: int = logging.INFO, stream=None) -> logging.Handler:
    """Route the root logger (the service's and uvicorn's) through one JSON-lines handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    return handler
