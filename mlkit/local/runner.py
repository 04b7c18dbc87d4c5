"""Run the job graph on this machine: the same task functions the Databricks jobs call.

Order comes from ``Job.topological_order()``; values between tasks go through a local task
context (JSON under the state folder). A task that raises a WorkloadError (bad input, gate
failed, server unreachable) stops its job with a message; the next job still runs.

Two failures are not the task's own and are told apart here, so neither ends in a library's
traceback: the tracking server stopped answering in the middle of a task (any exception while
it no longer answers is reported as that, naming the server and the task), and an interrupt
(Ctrl-C; Spark turns it into a cancelled job, so whatever surfaces once the interrupt flag is set
is the interrupt), which ends the whole run with :class:`Interrupted`.
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
from mlkit_workloads.errors import GateFailed, TrackingUnreachable, WorkloadError
from mlkit_workloads.graph import JOBS
from mlkit_workloads.runtime import Runtime
from mlkit_workloads.settings import Source, WorkloadSettings
from mlkit_workloads.tables import DeltaRsStore


@dataclass
class TaskRecord:
    job: str
    key: str
    entry_point: str
    status: str  # ok | failed | not run | interrupted, or a task's own outcome (see OUTCOMES)
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
        return all(t.status == "ok" or t.status in OUTCOMES for t in self.tasks)

    def result(self, job: str, key: str) -> dict[str, Any]:
        return next((t.result for t in self.tasks if t.job == job and t.key == key), {})


# Task outcomes that are neither a pass nor a failure: a task returns ``{"outcome": ...}`` and the
# task table shows it instead of "ok" (a skipped re-training, a monitor run with nothing to compare).
OUTCOMES = ("skipped", "nothing to compare")


class Interrupted(Exception):
    """Ctrl-C during a task. ``kept`` says what the finished tasks left behind."""

    def __init__(self, job: str, task: str, kept: list[str]):
        self.job, self.task, self.kept = job, task, kept
        kept_text = "; ".join(kept) if kept else "nothing (no task had finished)"
        super().__init__(f"interrupted during {job} › {task} (tables keep their last committed version; an MLflow "
                         f"run it had open is marked FAILED); kept: {kept_text}")


class InterruptFlag:
    """Set by the CLI's SIGINT handler, so an error raised by the cancelled Spark job is read as the interrupt."""

    def __init__(self) -> None:
        self.set = False


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "data"


def tables_root(settings: WorkloadSettings, state_dir: Path) -> Path:
    """The environment's tables root: where `mlkit serve` writes the inference log and the monitor
    job reads it (a ``--data`` run keeps its own training tables below it)."""
    return Path(settings.tables.root).resolve() if settings.tables.root else (state_dir / "tables").resolve()


PARQUET_MAGIC = b"PAR1"
_PARQUET_SUFFIXES, _CSV_SUFFIXES = (".parquet", ".pq"), (".csv", ".txt")


def _file_format(path: Path) -> str:
    """parquet or csv, by extension, else by content (parquet files start with PAR1)."""
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return "parquet"
    if path.suffix.lower() in _CSV_SUFFIXES:
        return "csv"
    with open(path, "rb") as f:
        return "parquet" if f.read(4) == PARQUET_MAGIC else "csv"


def data_format(data: Path) -> str:
    """The format of a ``--data`` file or directory (the files Spark would read: not hidden, not _SUCCESS).

    Raises ValueError naming the directory when it holds no data files or a mix of formats.
    """
    if not data.is_dir():
        return _file_format(data)
    files = [f for f in sorted(data.rglob("*")) if f.is_file()
             and not any(part.startswith((".", "_")) for part in f.relative_to(data).parts)]
    if not files:
        raise ValueError(f"--data {data}: the directory has no data files")
    kinds = {f: _file_format(f) for f in files}
    if len(set(kinds.values())) > 1:
        by = {k: [f.name for f, v in kinds.items() if v == k][:3] for k in set(kinds.values())}
        raise ValueError(f"--data {data}: the directory mixes formats ("
                         + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(by.items()))
                         + "); give a directory of one format")
    return next(iter(kinds.values()))


def settings_for_run(settings: WorkloadSettings, state_dir: Path, data: Path | None = None) -> WorkloadSettings:
    """Local adjustments: tables under the state folder; ``--data`` replaces the forecast source."""
    update: dict[str, Any] = {}
    if settings.tables.root is None:
        # Each --data source gets its own tables: ingest appends new rows to the table it is given,
        # so one table for every source would train and score your file together with earlier data.
        root = tables_root(settings, state_dir)
        if data is not None:
            resolved = str(data.resolve())
            root = root / f"data-{_slug(data.stem)}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
        update["tables"] = settings.tables.model_copy(update={"root": str(root.resolve())})
    if data is not None:
        fmt = data_format(data)
        update["forecast"] = settings.forecast.model_copy(update={"source": Source(format=fmt, path=str(data))})
    return settings.model_copy(update=update)


def with_local_export(settings: WorkloadSettings, server) -> WorkloadSettings:
    """The export task's connection to the local PostgreSQL (``mlkit.local.postgres.Server``):
    127.0.0.1 without TLS, the password from the server's file, written with psycopg."""
    export = settings.export.model_copy(update={
        "host": server.host, "port": server.port, "database": server.database, "user": server.user,
        "auth": "password_file", "password_file": str(server.password_file), "sslmode": "disable",
        "driver": "psycopg"})
    return settings.model_copy(update={"export": export})


def needs_postgres(settings: WorkloadSettings, jobs: list[str]) -> bool:
    """Whether a run of ``jobs`` writes to PostgreSQL (the forecast job's export task, when on)."""
    return settings.export.enabled and any(t.entry_point == "mlkit-export" for j in jobs for t in JOBS[j].tasks)


def new_run_id() -> str:
    """A job run id for a local run (Databricks passes its own): time, then 8 random hex digits."""
    import secrets
    from datetime import datetime, timezone

    return f"local-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def run_jobs(settings: WorkloadSettings, jobs: list[str], spark, env: str, state_dir: Path,
             on_task: Callable[[str, str], Any] | None = None, say: Callable[[str], None] = lambda m: None,
             force: bool = False, interrupt: InterruptFlag | None = None, monitor_root: str | None = None) -> RunReport:
    """Execute ``jobs`` in order, each job's tasks in dependency order.

    ``on_task(job, key)`` may return a context manager (the CLI's progress bar) wrapping each task.
    ``force`` trains again even on a data version already trained with the same settings.
    ``monitor_root``: where the service writes its inference log (the monitor job's tables); by
    default the run's tables root.
    """
    import mlflow

    root = settings.tables.root
    if root is None:
        raise ValueError("settings.tables.root must be set (see settings_for_run)")
    report = RunReport(tracking_uri=mlflow.get_tracking_uri(), tables_root=root)
    tables = DeltaRsStore(root)
    interrupt = interrupt or InterruptFlag()
    run_id = new_run_id()
    for job_name in jobs:
        job = JOBS[job_name]
        job_tables = DeltaRsStore(monitor_root) if job_name == "monitor" and monitor_root else tables
        ctx_file = state_dir / "task_values" / f"{job_name}.json"
        ctx_file.unlink(missing_ok=True)  # a job run starts with no upstream values
        ctx = LocalTaskContext(path=ctx_file)
        stopped = False
        for task in job.topological_order():
            rec = TaskRecord(job_name, task.key, task.entry_point, "not run")
            report.tasks.append(rec)
            if stopped:
                continue
            rt = Runtime(env, settings, spark, job_tables, ctx.for_task(task.key), say=say, force=force,
                         run_id=run_id)
            cm = on_task(job_name, task.key) if on_task else None
            t0 = time.perf_counter()
            try:
                if cm is not None:
                    with cm:
                        rec.result = run_task(task.entry_point, rt, task_params(task))
                else:
                    rec.result = run_task(task.entry_point, rt, task_params(task))
                rec.status = rec.result.get("outcome", "ok") if rec.result.get("outcome") in OUTCOMES else "ok"
            except GateFailed as e:
                rec.status, rec.error, stopped = "failed", str(e), True
                rec.result = dict(ctx.values.get(task.key, {}))
            except TrackingUnreachable as e:  # the task's own check found the server gone
                end_active_runs()
                rec.status, rec.error, stopped = "failed", _tracking_lost(job_name, task.key, str(e)), True
            except WorkloadError as e:
                rec.status, rec.error, stopped = "failed", str(e), True
                end_active_runs()
            except BaseException as e:  # noqa: BLE001 - told apart below; anything else keeps its traceback
                end_active_runs()
                if interrupt.set or isinstance(e, KeyboardInterrupt):
                    rec.status = "interrupted"
                    raise Interrupted(job_name, task.key, kept(report)) from None
                down = tracking_down()
                if down is None:
                    raise
                rec.status, rec.error, stopped = "failed", _tracking_lost(job_name, task.key, down), True
            finally:
                rec.seconds = time.perf_counter() - t0
    return report


def _tracking_lost(job: str, task: str, why: str) -> str:
    return (f"{job} › {task}: {why}; the task stopped there and wrote no table (tables keep their last "
            "committed version); the next `mlkit run` starts the server again and recovers")


def tracking_down() -> str | None:
    """Why the tracking server does not answer now, or None when it does (then the error was something else)."""
    from mlkit_workloads.tracking import check_reachable

    try:
        check_reachable()
    except TrackingUnreachable as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - whatever MLflow raises here, the server is not usable
        return f"the MLflow tracking server does not answer ({type(e).__name__})"
    return None


def end_active_runs() -> None:
    """Mark the MLflow runs a stopped task left open as FAILED, so a later job can start its own.

    With the server gone, ending a run fails too: then the run stays RUNNING in the store (nothing
    can reach it) and only this process's stack of active runs is emptied.
    """
    import mlflow

    for _ in range(10):  # nested runs (a study and its trial) at most a few deep
        if mlflow.active_run() is None:
            return
        try:
            mlflow.end_run("FAILED")
        except Exception:  # noqa: BLE001 - server unreachable: forget the run locally
            from mlflow.tracking import fluent

            stack = fluent._active_run_stack.get()
            if stack:
                stack.pop()


def kept(report: RunReport) -> list[str]:
    """What the finished tasks left behind, in words (for the interrupt line)."""
    out = []
    for t in report.tasks:
        if t.status == "ok" or t.status in OUTCOMES:
            r = t.result
            what = (f"{r['table']} v{r['table_version']}" if "table_version" in r and "table" in r
                    else f"{r['model_name']} v{r['model_version']}" if "model_version" in r and "model_name" in r
                    else t.status)
            out.append(f"{t.job} › {t.key} ({what})")
    return out


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
