"""`mlkit stop --env local`: stop every background server a local environment's state dir started.

`mlkit run` and `mlkit serve` leave the MLflow server running on purpose (the UI stays browsable,
the next run starts faster); this is the one command that ends it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from envconfig.loader import load_environment

from ..console import console, user_errors
from .options import ENVIRONMENTS


def stop(
    env: str = typer.Option("local", "--env", help="a local environment (kind: local)"),
    environments: Path = ENVIRONMENTS,
) -> None:
    """Stop the MLflow server(s) ENV's state dir started (the store and the runs stay on disk)."""
    with user_errors():
        cfg = load_environment(env, environments)
        cfg.require_local("stop", "it stops the MLflow servers a local environment's state dir started")
        from ..local import mlflow_server

        state = Path(cfg.local.state_dir).resolve()
        stopped = mlflow_server.stop_all(state)
        if not stopped:
            console.print(f"no server started from {state} is running")
        for s in stopped:
            console.print(f"stopped the MLflow server {s.url or ''} (pid {s.pid}); its store stays in {state}")
