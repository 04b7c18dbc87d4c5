"""Assemble the service from settings, and the container's entry point (``python -m mlkit_workloads.serve``).

``build`` is shared by ``mlkit serve --env local`` (kit CLI) and the AKS container: the caller
decides the tracking URI, the inference-log sink and whether the API is open (local only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..registry_contract import ServedModel, served_models
from ..settings import WorkloadSettings
from .auth import ApiKeys, key_vault_fetch
from .inference_log import InferenceLogger, Sink
from .registry import EntraDatabricksToken, RegistrySource
from .schema import ClassifierSchemas, Schemas, example_request
from .service import BundleService, VersionWatcher
from .settings import ServingSettings
from .single import InputColumn, SingleModelService
from .telemetry import CONNECTION_STRING_ENV, TelemetryError, json_logging, tracer_provider

log = logging.getLogger("mlkit.serve")


@dataclass
class Built:
    app: object
    services: dict[str, VersionWatcher]  # job -> its model's watcher
    logger: InferenceLogger | None
    settings: ServingSettings

    @property
    def service(self) -> VersionWatcher:
        """The forecast bundle's service (the first served model if the forecast is not served)."""
        return self.services.get("forecast") or next(iter(self.services.values()))


def endpoint(ws: WorkloadSettings, served: ServedModel, ss: ServingSettings, source: RegistrySource):
    """The served model's watcher (started: its first version is loaded if the alias exists), request
    schemas and routes."""
    from . import routes_classifier, routes_forecast
    from .app import Endpoint

    if served.kind == "bundle":
        cols = ws.forecast.columns
        service = BundleService(source, list(cols.group_keys), list(cols.features), cols.timestamp,
                                ss.lru_max_models, ss.lru_max_bytes, ss.alias_poll_seconds, ss.preload_groups,
                                job=served.job).start()
        example, dates, levels = example_request(service.current.models) if service.ready else (None, None, [])
        schemas = Schemas(list(cols.group_keys), cols.timestamp, list(cols.features), ss.max_batch_rows, example,
                          dates, levels)
        routes = routes_forecast
    else:
        c = ws.classifier.columns
        service = SingleModelService(source, list(c.features), ss.alias_poll_seconds, job=served.job).start()
        columns = (service.current.models.columns if service.ready else
                   [InputColumn(f, "string" if f in c.categorical else "number") for f in c.features])
        schemas = ClassifierSchemas(served.job, columns, ss.max_batch_rows, c.positive_label,
                                    service.current.models.example if service.ready else [])
        routes = routes_classifier
    schemas.example_version = service.current.version if service.ready else None
    return Endpoint(served.job, service, schemas, routes)


def build(ws: WorkloadSettings, *, env: str, cache_dir: Path, tracking_uri: str | None,
          sink: Sink | None, auth: ApiKeys | None, registry_uri: str | None = None,
          token: EntraDatabricksToken | None = None, tracer_provider=None) -> Built:
    """The app serving every model of ``workloads.serving.models`` (registry_contract.served_models).
    ``tracer_provider``: where request spans go (telemetry.tracer_provider; None: not traced)."""
    from .app import create_app

    ss = ws.serving
    endpoints = [endpoint(ws, m, ss, RegistrySource(m.name, ss.alias, cache_dir, tracking_uri=tracking_uri,
                                                     registry_uri=registry_uri, token=token))
                 for m in served_models(ws)]
    logger = None
    if sink is not None and ss.inference_log.enabled:
        il = ss.inference_log
        logger = InferenceLogger(sink, il.queue_size, il.batch_size, il.flush_seconds, il.max_retries,
                                 il.retry_backoff_seconds).start()
    app = create_app(endpoints, ss, env=env, alias=ss.alias, auth=auth, logger=logger,
                     tracer_provider=tracer_provider)
    return Built(app, {e.job: e.service for e in endpoints}, logger, ss)


def _required_env(name: str, why: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"mlkit-serve: set {name} ({why})")
    return value


def main(argv: list[str] | None = None) -> None:
    """Container entry point. Cloud only: API keys from Key Vault, inference log to Event Hubs."""
    import uvicorn

    p = argparse.ArgumentParser(prog="mlkit-serve", description="mlkit scoring service (AKS container)")
    p.add_argument("--env", required=True)
    p.add_argument("--settings", required=True, help="workload settings JSON (the environment's workloads section)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None)
    a = p.parse_args(argv)
    try:
        ws = WorkloadSettings.model_validate(json.loads(Path(a.settings).read_text()))
    except (OSError, ValueError) as e:
        sys.exit(f"mlkit-serve: {a.settings}: {e}")
    ss = ws.serving
    if ss.telemetry.json_logs:
        json_logging()
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if ss.auth.mode == "none":
        sys.exit("mlkit-serve: workloads.serving.auth.mode is 'none'; the container never runs open "
                 "(use `mlkit serve --env local` for an open local service)")
    vault = _required_env("MLKIT_KEY_VAULT_URI", "the Key Vault holding the API keys")
    if ss.telemetry.traces == "azure_monitor" and not os.environ.get(CONNECTION_STRING_ENV):
        # Read with the pod's workload identity: the connection string is in no manifest and no state.
        secret = _required_env("MLKIT_APPINSIGHTS_SECRET_NAME", "the Key Vault secret with Application Insights' "
                                                         "connection string")
        try:
            os.environ[CONNECTION_STRING_ENV] = key_vault_fetch(vault, secret)()
        except Exception as e:  # the service can run untraced; say why, loudly
            log.error("traces off: cannot read secret %r in %s: %s: %s", secret, vault, type(e).__name__, e)
    try:
        provider = tracer_provider(ss.telemetry.traces, f"mlkit-scoring-{a.env}", ss.telemetry.sample_ratio)
    except TelemetryError as e:
        log.error("traces off: %s", e)
        provider = None
    auth = ApiKeys(key_vault_fetch(vault, ss.auth.api_keys_secret_name), ss.auth.refresh_seconds,
                   describe=f"secret {ss.auth.api_keys_secret_name!r} in {vault}")
    auth.refresh()
    sink = None
    if ss.inference_log.enabled:
        from .sinks import EventHubSink

        sink = EventHubSink(_required_env("MLKIT_EVENTHUB_NAMESPACE", "fully qualified Event Hubs namespace"),
                            _required_env("MLKIT_EVENTHUB_NAME", "the inference-log hub"))
    tracking = os.environ.get("MLFLOW_TRACKING_URI")
    # The workspace registry, signed in as the pod's workload identity (no token in any manifest).
    token = (EntraDatabricksToken() if tracking == "databricks" and not os.environ.get("DATABRICKS_TOKEN")
             else None)
    built = build(ws, env=a.env, cache_dir=Path(os.environ.get("MLKIT_MODEL_CACHE", "/tmp/mlkit-models")),
                  tracking_uri=tracking, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI"),
                  sink=sink, auth=auth, token=token, tracer_provider=provider)
    uvicorn.run(built.app, host=a.host, port=a.port or ss.port, log_level="info", access_log=False,
                log_config=None if ss.telemetry.json_logs else uvicorn.config.LOGGING_CONFIG)
