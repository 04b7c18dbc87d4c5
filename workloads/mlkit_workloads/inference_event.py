"""The inference event: one answered (or rejected) prediction request, as the scoring service logs
it and the monitoring job reads it. The one schema of the two.

The service builds each event with :func:`inference_event` and offers it to the inference log;
Event Hubs gets it as a JSON message body (:func:`to_json`), readers of the hub or of its Capture
archive get it back with :func:`from_json`, and the Delta sink and the monitoring job lay events
out as the columns of :func:`event_table`.

Fields: ``model_name``/``model_version`` (full registered name, version), ``group``/``group_key``
(the forecast bundle's group; empty for a single model), ``inputs`` (the request rows, one dict per
row), ``outputs`` (the model's score per row: the point forecast, or the classifier's probability),
``status`` (200, or the rejection: 401/404/413/415/422/503, with its error ``code`` and no body).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

EVENT_FIELDS = ("request_id", "ts", "env", "model_name", "model_version", "group_key", "group", "inputs",
                "outputs", "latency_ms")
# The columns of a stored event. Nested inputs/outputs stay JSON text: the feature set is per model.
EVENT_COLUMNS = ("request_id", "ts", "env", "model_name", "model_version", "group_key", "group", "n_rows",
                 "inputs", "outputs", "latency_ms", "status", "error")


def inference_event(request_id: str, env: str, model_name: str, model_version: str, latency_ms: float, *,
                    inputs: list[dict[str, Any]] = (), outputs: list[Any] = (), group: dict[str, str] | None = None,
                    status: int = 200, error: str | None = None) -> dict[str, Any]:
    group = group or {}
    return {"request_id": request_id, "ts": dt.datetime.now(dt.timezone.utc).isoformat(), "env": env,
            "model_name": model_name, "model_version": str(model_version),
            # as the bundle's index keys a group (meta_model.canonical): a JSON list of its key values
            "group_key": json.dumps([str(v) for v in group.values()]) if group else "", "group": group,
            "inputs": list(inputs), "outputs": list(outputs), "latency_ms": float(latency_ms),
            "status": int(status), "error": error}


def to_json(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), default=str)


def from_json(body: bytes | str) -> dict[str, Any]:
    """The event a message body carries (the inverse of to_json); ValueError says what is wrong with it."""
    try:
        event = json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ValueError(f"body is not an inference event: not UTF-8 JSON ({e})") from None
    if not isinstance(event, dict):
        raise ValueError(f"body is not an inference event: JSON {type(event).__name__}, not an object")
    missing = [f for f in EVENT_FIELDS if f not in event]
    if missing:
        raise ValueError(f"body is not an inference event: no {', '.join(missing)}")
    return event


def event_table(events: list[dict[str, Any]]):
    """Events as an Arrow table of EVENT_COLUMNS (what the Delta sink writes and the monitor reads)."""
    import pyarrow as pa

    ts = pa.array([e["ts"] for e in events], pa.string()).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({
        "request_id": pa.array([e["request_id"] for e in events], pa.string()),
        "ts": ts,
        "env": pa.array([e["env"] for e in events], pa.string()),
        "model_name": pa.array([e["model_name"] for e in events], pa.string()),
        "model_version": pa.array([str(e["model_version"]) for e in events], pa.string()),
        "group_key": pa.array([e["group_key"] for e in events], pa.string()),
        "group": pa.array([json.dumps(e["group"]) for e in events], pa.string()),
        "n_rows": pa.array([len(e["outputs"]) for e in events], pa.int64()),
        "inputs": pa.array([json.dumps(e["inputs"], default=str) for e in events], pa.string()),
        "outputs": pa.array([json.dumps(e["outputs"]) for e in events], pa.string()),
        "latency_ms": pa.array([float(e["latency_ms"]) for e in events], pa.float64()),
        "status": pa.array([int(e.get("status", 200)) for e in events], pa.int32()),
        "error": pa.array([e.get("error") for e in events], pa.string()),
    })
