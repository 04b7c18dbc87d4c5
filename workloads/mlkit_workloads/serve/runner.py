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

from ..model_names import full_model_name
from ..settings import WorkloadSettings
from .auth import ApiKeys, key_vault_fetch
from .inference_log import InferenceLogger, Sink
from .registry import EntraDatabricksToken, RegistrySource
from .schema import Schemas, example_request
from .service import ModelService
from .settings import ServingSettings

log = logging.getLogger("mlkit.serve")


@dataclass
class Built:
    app: object
    service: ModelService
    logger: InferenceLogger | None
    settings: ServingSettings


def build(ws: WorkloadSettings, *, env: str, cache_dir: Path, tracking_uri: str | None,
          sink: Sink | None, auth: ApiKeys | None, registry_uri: str | None = None,
          serving: ServingSettings | None = None, token: EntraDatabricksToken | None = None) -> Built:
    from .app import create_app

    ss = serving or ws.serving
    cols = ws.forecast.columns
    name = full_model_name(ws.tracking.registry, ss.registered_model or ws.forecast.registered_model)
    source = RegistrySource(name, ss.alias, cache_dir, tracking_uri=tracking_uri, registry_uri=registry_uri,
                            token=token)
    service = ModelService(source, list(cols.group_keys), list(cols.features), cols.timestamp,
                           ss.lru_max_models, ss.lru_max_bytes, ss.alias_poll_seconds, ss.preload_groups).start()
    example, dates, levels = example_request(service.current.models) if service.ready else (None, None, [])
    schemas = Schemas(list(cols.group_keys), cols.timestamp, list(cols.features), ss.max_batch_rows, example,
                      dates, levels)
    logger = None
    if sink is not None and ss.inference_log.enabled:
        il = ss.inference_log
        logger = InferenceLogger(sink, il.queue_size, il.batch_size, il.flush_seconds, il.max_retries,
                                 il.retry_backoff_seconds).start()
    app = create_app(service, schemas, ss, env=env, alias=ss.alias, auth=auth, logger=logger)
    return Built(app, service, logger, ss)


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        ws = WorkloadSettings.model_validate(json.loads(Path(a.settings).read_text()))
    except (OSError, ValueError) as e:
        sys.exit(f"mlkit-serve: {a.settings}: {e}")
    ss = ws.serving
    if ss.auth.mode == "none":
        sys.exit("mlkit-serve: workloads.serving.auth.mode is 'none'; the container never runs open "
                 "(use `mlkit serve --env local` for an open local service)")
    vault = _required_env("MLKIT_KEY_VAULT_URI", "the Key Vault holding the API keys")
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
                  sink=sink, auth=auth, token=token)
    uvicorn.run(built.app, host=a.host, port=a.port or ss.port, log_level="info", access_log=False)
