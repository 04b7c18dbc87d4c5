"""What every task gets: settings, Spark, the table store, task values, and a progress hook."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable

from . import __version__
from .context import TaskContext
from .settings import WorkloadSettings
from .tables import TableStore

# Table names, one place. Each is a Delta table under settings.tables.root.
TABLES = {
    "forecast": "forecast_sales",
    "classifier": "classifier_data",
    "group_metrics": "forecast_group_metrics",
    "decisions": "promotion_decisions",
    "predictions": "forecast_predictions",
}


@dataclass
class Runtime:
    env: str
    settings: WorkloadSettings
    spark: Any
    tables: TableStore
    context: TaskContext
    # Called with a short status line; the local runner shows it next to its progress bar.
    say: Callable[[str], None] = field(default=lambda msg: None)
    # Train again even when this data version was already trained with the same settings.
    force: bool = False
    # The job run this task belongs to (Databricks' {{job.run_id}}; the local runner makes one per run).
    run_id: str = ""


def code_version() -> str:
    """Wheel version + git sha. The deploy sets MLKIT_GIT_SHA; locally we ask git."""
    sha = os.environ.get("MLKIT_GIT_SHA")
    if not sha:
        try:
            sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                 timeout=5, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            sha = "unknown"
    return f"{__version__}+{sha}"


def experiment(rt: Runtime, job: str) -> str:
    """Create (or reuse) the job's MLflow experiment and make it current. Returns its id."""
    import mlflow

    name = f"{rt.settings.tracking.experiment_prefix.rstrip('/')}/{job}"
    exp = mlflow.set_experiment(name)
    return exp.experiment_id
