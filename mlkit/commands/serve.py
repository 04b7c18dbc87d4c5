"""`mlkit serve --env local [--port N]`: the scoring service on 127.0.0.1, serving the local
registry's champion of every model in `workloads.serving.models` (the MLflow server `mlkit run`
uses, started if it is not running).

Cloud environments are served on AKS by the `<env>-serving` stack; this command refuses them
rather than run a cloud-configured service open on a laptop.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import typer

from envconfig.errors import UserError
from envconfig.loader import load_environment

from ..console import console, err, user_errors
from .options import ENVIRONMENTS


def serve(
    env: str = typer.Option("local", "--env", help="a local environment (kind: local)"),
    port: int = typer.Option(None, "--port", help="port on 127.0.0.1 [default: workloads.serving.port]"),
    environments: Path = ENVIRONMENTS,
) -> None:
    """Serve the champions of the local registry (workloads.serving.models) over HTTP on 127.0.0.1 (open: local only)."""
    with user_errors():
        cfg = load_environment(env, environments)
        cfg.require_local("serve", f"its scoring service runs on AKS: stack {cfg.names.serving_stack}, applied by "
                                   f"`mlkit deploy --env {env}`")
        import uvicorn
        from mlkit_workloads.monitor.data import INFERENCE_LOG
        from mlkit_workloads.serve.runner import build
        from mlkit_workloads.serve.sinks import DeltaSink

        from ..local import mlflow_server
        from ..local.runner import tables_root

        ss = cfg.workloads.serving
        port = port or ss.port
        if not 1024 <= port <= 65535:
            raise UserError(f"--port {port}: use a port between 1024 and 65535")
        if _taken(port):
            raise UserError(f"port {port} on 127.0.0.1 is in use; pass --port with a free one")
        state = Path(cfg.local.state_dir)
        mlflow_server.bound_client_retries()  # an alias poll must not hang minutes on a stopped server
        server = mlflow_server.ensure(state, cfg.local.mlflow_port)
        tables = tables_root(cfg.workloads, state.resolve())  # where `mlkit run --job monitor` reads it
        log_path = tables / INFERENCE_LOG  # where the monitoring job reads it
        telemetry = ss.telemetry
        from mlkit_workloads.serve.telemetry import TelemetryError, tracer_provider

        try:  # local: none or console (azure_monitor works too, given the connection string's env var)
            provider = tracer_provider(telemetry.traces, f"mlkit-scoring-{cfg.name}", telemetry.sample_ratio)
        except TelemetryError as e:
            raise UserError(str(e)) from None
        built = build(cfg.workloads, env=cfg.name, cache_dir=state / "serving-cache", tracking_uri=server.url,
                      sink=DeltaSink(log_path), auth=None, tracer_provider=provider)
        console.print(f"on http://127.0.0.1:{port}  (docs: /docs, OpenAPI: /openapi.json, models: /v1/models)")
        for job, service in built.services.items():
            route = f"POST /v1/models/{job}/predict"
            if service.ready:
                console.print(f"  {route}: [bold]{service.source.name}@{ss.alias}[/] (version {service.current.version})")
            else:
                err.print(f"  {route}: [yellow]no model yet:[/] {service.status}. It answers 503 until "
                          f"`mlkit run --env {env} --job {job}` promotes one; the alias is polled every "
                          f"{ss.alias_poll_seconds:g} s.")
        err.print("[bold yellow]auth: OPEN[/] — local environment, no bearer token required; anything that can "
                  f"reach 127.0.0.1:{port} can call it. Cloud environments require API keys from Key Vault.")
        console.print(f"inference log -> Delta table {log_path}")
        # The service logs alias moves, load failures and, at shutdown, the inference-log counts.
        if telemetry.json_logs:
            from mlkit_workloads.serve.telemetry import json_logging

            json_logging(logging.WARNING)
        else:
            logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("mlkit.serve").setLevel(logging.INFO)
        uvicorn.run(built.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0
