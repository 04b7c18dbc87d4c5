"""`mlkit run`: run the job graph of a local environment on this machine, end to end."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from envconfig.errors import UserError
from envconfig.loader import load_environment

from ..console import console, err, user_errors
from .options import ENVIRONMENTS


def run(
    env: str = typer.Option("local", "--env", help="a local environment (kind: local)"),
    job: str = typer.Option("forecast", "--job", help="a job of the graph (forecast, classifier, monitor) or all"),
    data: Optional[Path] = typer.Option(None, "--data", help="CSV/parquet for the forecast job (column mapping from the environment)"),
    environments: Path = ENVIRONMENTS,
    stores: Optional[int] = typer.Option(None, "--stores", help="synthetic data: number of stores"),
    items: Optional[int] = typer.Option(None, "--items", help="synthetic data: items per store"),
    days: Optional[int] = typer.Option(None, "--days", help="synthetic data: days of history"),
    stop_server: bool = typer.Option(False, "--stop-server", help="stop the MLflow server (and PostgreSQL) at the end if this run started them"),
    force: bool = typer.Option(False, "--force", help="train again even on a data version already trained with the same settings"),
) -> None:
    """Run JOB of ENV locally: MLflow server on 127.0.0.1, Spark local mode, Delta via delta-rs."""
    with user_errors():
        try:
            code = _run(env, job, data, environments, stores, items, days, stop_server, force)
        except KeyboardInterrupt:  # before the first task (starting MLflow or Spark) or after the last
            err.print("interrupted outside any task (starting up or writing the summary); the tables are as the "
                      "last finished task left them")
            code = INTERRUPTED
    raise typer.Exit(code)


INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def _run(env: str, job: str, data: Path | None, environments: Path, stores: int | None, items: int | None,
         days: int | None, stop_server: bool, force: bool = False) -> int:
    from mlkit_workloads.graph import JOBS

    cfg = load_environment(env, environments)
    cfg.require_local("run", "deploy the stacks and run the Databricks job for this one")
    jobs = list(JOBS) if job == "all" else [job]
    if any(j not in JOBS for j in jobs):
        raise UserError(f"no job {job!r}; use {', '.join(JOBS)} or all")
    if data is not None and not data.exists():
        raise UserError(f"--data {data}: no such file")
    if data is not None and "forecast" not in jobs:
        raise UserError("--data feeds the forecast job; add --job forecast or --job all")

    from mlkit_workloads.local_spark import local_session
    from mlkit_workloads.settings import WorkloadSettings

    from ..local import mlflow_server, postgres, runner, summary
    from ..local.progress import TaskProgress

    mlflow_server.bound_client_retries()
    runner.quiet_libraries()
    state = Path(cfg.local.state_dir).resolve()
    try:
        settings: WorkloadSettings = runner.settings_for_run(cfg.workloads, state, data)
    except ValueError as e:
        raise UserError(str(e)) from None
    size = {k: v for k, v in (("stores", stores), ("items", items), ("days", days)) if v is not None}
    if size:
        try:
            synth = settings.forecast.synthetic.model_validate({**settings.forecast.synthetic.model_dump(), **size})
        except ValueError as e:
            raise UserError(f"synthetic size: {e}") from None
        settings = settings.model_copy(update={"forecast": settings.forecast.model_copy(update={"synthetic": synth})})

    t0 = time.perf_counter()
    with console.status("starting the MLflow server and Spark…"):
        server = mlflow_server.ensure(state, cfg.local.mlflow_port)
        os.environ["MLFLOW_TRACKING_URI"] = server.url
        spark = local_session(cfg.local.spark_cores)
        database = postgres.ensure(state) if runner.needs_postgres(settings, jobs) else None
    if database is not None:
        settings = runner.with_local_export(settings, database)
    how = "started" if server.started else "reused"
    if server.pid is None:  # another state dir's (or someone else's) server: its runs are stored there
        how += f", not started from {state}: runs and models go to that server's store"
    pg = (f"PostgreSQL {database.host}:{database.port} ({'started' if database.started else 'reused'}) · "
          if database is not None else "")
    console.print(f"MLflow {server.url} ({how}) · {pg}"
                  f"Spark local[{cfg.local.spark_cores}] · ready in {time.perf_counter() - t0:.1f} s")
    interrupt = runner.InterruptFlag()
    previous = _on_sigint(spark, interrupt)
    report = None
    try:
        with TaskProgress(spark, console) as progress:
            report = runner.run_jobs(settings, jobs, spark, env, state, on_task=progress.task, say=progress.say,
                                     force=force, interrupt=interrupt,
                                     monitor_root=str(runner.tables_root(cfg.workloads, state)))
        for t in report.tasks:  # a skipped training, a monitor run with nothing to compare: say it plainly
            if t.result.get("note") and t.status in runner.OUTCOMES:
                console.print(f"{t.job} › {t.key}: {t.result['note']}", markup=False)
        out_dir = state / "runs" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        summary.write(report, out_dir, console)
        console.print(f"total {time.perf_counter() - t0:.1f} s")
    except runner.Interrupted as e:
        err.print(str(e), markup=False)
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop_spark(spark, interrupt.set)
        if stop_server and server.started:
            mlflow_server.stop(server)
        if stop_server and database is not None and database.started:
            postgres.stop(state)
    if report is None:
        return INTERRUPTED
    alive = mlflow_server.started_here(state)
    if alive and not (stop_server and server.started):
        console.print(f"the MLflow server {server.url} (pid {alive[0].pid}) is still running so the UI stays "
                      f"browsable; stop it with `mlkit stop --env {env}`")
    if database is not None and not (stop_server and database.started):
        console.print(f"PostgreSQL {database.host}:{database.port} (database {database.database}, user "
                      f"{database.user}, password in {database.password_file}) keeps running for BI clients; "
                      f"`mlkit stop --env {env}` stops it")
    return 0 if report.ok else 1


def _on_sigint(spark, interrupt) -> object:
    """Ctrl-C: flag the interrupt, cancel Spark's jobs, raise KeyboardInterrupt in the task.

    pyspark's own handler does the cancel inside the handler, on the main thread's py4j connection,
    which the interrupted call is still reading ("reentrant call"): here it runs on a thread of its
    own (its own connection). The flag makes whatever the cancelled job raises read as the
    interrupt. py4j reports every cut-off call with a traceback (``logging.exception`` on the root
    and its own loggers): once interrupted, logging is off for the rest of this process, which only
    stops Spark and exits. A second Ctrl-C while stopping is ignored: the first one is being handled.
    """
    import logging
    import threading

    def handler(signum, frame):
        if interrupt.set:
            return
        interrupt.set = True
        logging.disable(logging.CRITICAL)  # py4j logs the cut-off calls with tracebacks, on several loggers
        threading.Thread(target=_cancel_jobs, args=(spark,), daemon=True).start()
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, handler)


def _cancel_jobs(spark) -> None:
    """The JVM is told to say nothing first: what its cancelled tasks log (a shuffle fetch cut off,
    a task killed) is the interrupt, already reported in one line."""
    try:
        spark.sparkContext.setLogLevel("OFF")
        spark.sparkContext.cancelAllJobs()
    except Exception:  # noqa: BLE001 - the gateway may be going away; the task is stopping either way
        pass


def _stop_spark(spark, interrupted: bool = False) -> None:
    """Stop Spark quietly. After an interrupt the cancelled jobs' tasks are still reporting back:
    stopping under them makes the scheduler log a RejectedExecutionException stack, so the JVM's
    log goes quiet and the jobs get a few seconds to drain first; py4j's half-closed gateway
    connection would log a trace that says nothing the interrupt line did not."""
    import logging

    for name in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        if interrupted:
            spark.sparkContext.setLogLevel("OFF")
            tracker, deadline = spark.sparkContext.statusTracker(), time.monotonic() + 5
            while tracker.getActiveJobsIds() and time.monotonic() < deadline:
                time.sleep(0.1)
        spark.stop()
    except Exception:  # noqa: BLE001 - the JVM goes with this process anyway
        pass
