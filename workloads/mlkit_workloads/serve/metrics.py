"""``/metrics`` through prometheus-client: one registry per app (tests build many apps in a process).

Request counts and a latency histogram per route and model are observed by the
:class:`~.middleware.Observe` middleware; everything the service already counts (each model's
cache, version, swaps, load failures; the inference log's delivered/dropped) is read at scrape
time by a collector, so there is one count of each thing, not a copy kept in step.
"""

from __future__ import annotations

from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latency buckets (seconds): the goals are single-digit milliseconds, cold loads up to seconds.
BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.007, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
LOG_OUTCOMES = ("offered", "delivered", "dropped_queue_full", "dropped_send_failed", "dropped_shutdown")


class StateCollector:
    """The served models' and the inference log's own counters, as Prometheus metrics."""

    def __init__(self, services: dict[str, Any], logger: Any | None):
        self.services, self.logger = services, logger

    def collect(self) -> Iterable:
        ready = GaugeMetricFamily("mlkit_model_ready", "1 when the model has a version loaded", labels=["model"])
        info = GaugeMetricFamily("mlkit_model_info", "the version each model serves (value 1)",
                                 labels=["model", "name", "version"])
        swaps = CounterMetricFamily("mlkit_model_swaps", "versions swapped in (alias moves)", labels=["model"])
        failures = CounterMetricFamily("mlkit_group_load_failures", "group models that failed to load",
                                       labels=["model"])
        cache = {k: CounterMetricFamily(f"mlkit_model_cache_{k}", f"group model cache {k}", labels=["model"])
                 for k in ("hits", "misses", "evictions")}
        sizes = {k: GaugeMetricFamily(f"mlkit_model_cache_{k}", f"group model cache {k}", labels=["model"])
                 for k in ("loaded", "bytes", "max_models", "max_bytes")}
        for job, s in self.services.items():
            ready.add_metric([job], int(s.ready))
            swaps.add_metric([job], s.swaps)
            failures.add_metric([job], s.load_failures)
            if not s.ready:
                continue
            lv = s.current
            info.add_metric([job, lv.name, lv.version], 1)
            stats = lv.models.cache_info() if hasattr(lv.models, "cache_info") else None
            if stats is not None:
                for k, family in (*cache.items(), *sizes.items()):
                    family.add_metric([job], stats[k])
        yield from (ready, info, swaps, failures, *cache.values(), *sizes.values())
        if self.logger is not None:
            c, sink = self.logger.counts(), self.logger.sink.name
            events = CounterMetricFamily("mlkit_inference_log_events", "inference events by outcome",
                                         labels=["outcome", "sink"])
            for outcome in LOG_OUTCOMES:
                events.add_metric([outcome, sink], c[outcome])
            yield events
            yield CounterMetricFamily("mlkit_inference_log_retries", "batches sent again", value=c["retries"])
            yield GaugeMetricFamily("mlkit_inference_log_queued", "events queued or in flight",
                                    value=c["queued"] + c["in_flight"])


class ServiceMetrics:
    def __init__(self, services: dict[str, Any], logger: Any | None):
        self.registry = CollectorRegistry()
        self.requests = Counter("mlkit_requests", "responses by route, model and status code",
                                ["route", "model", "code"], registry=self.registry)
        self.latency = Histogram("mlkit_request_duration_seconds", "time to answer, by route and model",
                                 ["route", "model"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(StateCollector(services, logger))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, model: str, code: int, seconds: float) -> None:
        # labels() costs a lock and a dict lookup in the library: the children are kept per label set
        # (bounded: routes and models are fixed sets, codes a handful).
        key = (route, model, code)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(route, model, str(code)),
                                          self.latency.labels(route, model))
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
