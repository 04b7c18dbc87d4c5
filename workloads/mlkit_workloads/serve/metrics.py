"""``/metrics`` in the Prometheus text format (written by hand: a dozen lines, no dependency)."""

from __future__ import annotations

from typing import Any


def _label(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_metrics(counts, service, logger) -> str:
    lines = ["# TYPE mlkit_requests_total counter"]
    for (family, status), n in sorted(counts.snapshot().items()):
        lines.append(f'mlkit_requests_total{{route="{family}",code="{status}"}} {n}')
    lines += ["# TYPE mlkit_model_swaps_total counter", f"mlkit_model_swaps_total {service.swaps}",
              "# TYPE mlkit_group_load_failures_total counter",
              f"mlkit_group_load_failures_total {service.load_failures}",
              "# TYPE mlkit_model_ready gauge", f"mlkit_model_ready {int(service.ready)}"]
    if service.ready:
        lv = service.current
        lines += ["# TYPE mlkit_model_info gauge",
                  f'mlkit_model_info{{name="{_label(lv.name)}",version="{_label(lv.version)}"}} 1']
        cache = lv.models.cache_info()
        for k in ("loaded", "bytes", "max_models", "max_bytes"):
            lines += [f"# TYPE mlkit_model_cache_{k} gauge", f"mlkit_model_cache_{k} {cache[k]}"]
        for k in ("hits", "misses", "evictions"):
            lines += [f"# TYPE mlkit_model_cache_{k}_total counter", f"mlkit_model_cache_{k}_total {cache[k]}"]
    if logger is not None:
        c = logger.counts()
        lines.append("# TYPE mlkit_inference_log_events_total counter")
        for outcome in ("offered", "delivered", "dropped_queue_full", "dropped_send_failed", "dropped_shutdown"):
            lines.append(f'mlkit_inference_log_events_total{{outcome="{outcome}",sink="{logger.sink.name}"}} {c[outcome]}')
        lines += ["# TYPE mlkit_inference_log_retries_total counter", f"mlkit_inference_log_retries_total {c['retries']}",
                  "# TYPE mlkit_inference_log_queued gauge", f"mlkit_inference_log_queued {c['queued'] + c['in_flight']}"]
    return "\n".join(lines) + "\n"
