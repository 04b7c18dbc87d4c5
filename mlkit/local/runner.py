"""Run the job graph on this machine: the same task functions the Databricks jobs call.

Order comes from ``Job.topological_order()``; values between tasks go through a local task
context (JSON under the state folder). A task that raises a WorkloadError (bad input, gate
failed, server unreachable) stops its job with a message; the next job still runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlkit_workloads.context import LocalTaskContext
from mlkit_workloads.entrypoint import run_task, task_params
from mlkit_workloads.errors import GateFailed, WorkloadError
from mlkit_workloads.graph import JOBS
from mlkit_workloads.runtime import Runtime
from mlkit_workloads.settings import Source, WorkloadSettings
from mlkit_workloads.tables import DeltaRsStore


@dataclass
class TaskRecord:
    job: str
    key: str
    entry_point: str
    status: str  # ok | failed | not run
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class RunReport:
    tasks: list[TaskRecord] = field(default_factory=list)
    tracking_uri: str = ""
    tables_root: str = ""

    @property
    def ok(self) -> bool:
        return all(t.status == "ok" for t in self.tasks)

    def result(self, job: str, key: str) -> dict[str, Any]:
        return next((t.result for t in self.tasks if t.job == job and t.key == key), {})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "data"


def settings_for_run(settings: WorkloadSettings, state_dir: Path, data: Path | None = None) -> WorkloadSettings:
    """Local adjustments: tables under the state folder; ``--data`` replaces the forecast source."""
    update: dict[str, Any] = {}
    if settings.tables.root is None:
        # Each --data source gets its own tables: ingest appends new rows to the table it is given,
        # so one table for every source would train and score your file together with earlier data.
        root = state_dir / "tables"
        if data is not None:
            resolved = str(data.resolve())
            root = root / f"data-{_slug(data.stem)}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
        update["tables"] = settings.tables.model_copy(update={"root": str(root.resolve())})
    if data is not None:
        fmt = "parquet" if data.suffix.lower() in (".parquet", ".pq") or data.is_dir() else "csv"
        update["forecast"] = settings.forecast.model_copy(update={"source": Source(format=fmt, path=str(data))})
    return settings.model_copy(update=update)


def run_jobs(settings: WorkloadSettings, jobs: list[str], spark, env: str, state_dir: Path,
             on_task: Callable[[str, str], Any] | None = None, say: Callable[[str], None] = lambda m: None) -> RunReport:
    """Execute ``jobs`` in order, each job's tasks in dependency order.

    ``on_task(job, key)`` may return a context manager (the CLI's progress bar) wrapping each task.
    """
    import mlflow

    root = settings.tables.root
    if root is None:
        raise ValueError("settings.tables.root must be set (see settings_for_run)")
    report = RunReport(tracking_uri=mlflow.get_tracking_uri(), tables_root=root)
    tables = DeltaRsStore(root)
    for job_name in jobs:
        job = JOBS[job_name]
        ctx_file = state_dir / "task_values" / f"{job_name}.json"
        ctx_file.unlink(missing_ok=True)  # a job run starts with no upstream values
        ctx = LocalTaskContext(path=ctx_file)
        stopped = False
        for task in job.topological_order():
            rec = TaskRecord(job_name, task.key, task.entry_point, "not run")
            report.tasks.append(rec)
            if stopped:
                continue
            rt = Runtime(env, settings, spark, tables, ctx.for_task(task.key), say=say)
            cm = on_task(job_name, task.key) if on_task else None
            t0 = time.perf_counter()
            try:
                if cm is not None:
                    with cm:
                        rec.result = run_task(task.entry_point, rt, task_params(task))
                else:
                    rec.result = run_task(task.entry_point, rt, task_params(task))
                rec.status = "ok"
            except GateFailed as e:
                rec.status, rec.error, stopped = "failed", str(e), True
                rec.result = dict(ctx.values.get(task.key, {}))
            except WorkloadError as e:
                rec.status, rec.error, stopped = "failed", str(e), True
            finally:
                rec.seconds = time.perf_counter() - t0
    return report


def quiet_libraries() -> None:
    """Library chatter (MLflow's run links, artifact bars, Optuna, warnings) would bury the progress."""
    import logging
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    import mlflow  # noqa: F401 - configures its loggers on import; lower them afterwards

    for name in ("mlflow", "optuna", "py4j", "urllib3", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
