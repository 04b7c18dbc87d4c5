"""Shared fixtures: ONE local Spark session and ONE MLflow server for the whole test session.

Both are expensive to start (Spark 4-8 s, MLflow ~8 s on two cores), so every test that needs
them shares them. Both bind 127.0.0.1 only and are stopped at the end of the session.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from helpers import free_port, use_tracking_uri
from mlkit_workloads.target_runtime import DATABRICKS_RUNTIME

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

REPO = Path(__file__).resolve().parent.parent

# The second leg (.ci/run): the same tests in .venv-spark35, on the Databricks runtime's Spark and
# libraries (scripts/setup.sh). That venv has the workloads and a test harness, not the kit's
# cloud side (cdktn, checkov, ...), so there only these modules are collected; every test in
# them that takes the `spark` fixture is marked `spark`, and test_target_runtime.py checks that
# each such test lives in one of these.
SPARK_LEG_MODULES = ("test_workloads_spark.py", "test_monitor_capture.py", "test_target_runtime.py",
                     "test_ingest_odd_files.py")
# Spark tests of the kit's command line (`mlkit run` in a subprocess), not of the wheel: first leg only.
KIT_SPARK_MODULES = ("test_faults.py",)


def _pyspark_version() -> str:
    try:
        return version("pyspark")
    except PackageNotFoundError:
        return ""


ON_TARGET_RUNTIME = _pyspark_version().startswith(DATABRICKS_RUNTIME.spark_minor + ".")
collect_ignore = ([p.name for p in Path(__file__).parent.glob("test_*.py") if p.name not in SPARK_LEG_MODULES]
                  if ON_TARGET_RUNTIME else [])


def pytest_collection_modifyitems(items):
    # The `spark` mark comes from fixture use (directly or through another fixture), never by hand:
    # `-m "not spark"` then leaves out exactly the tests that start the JVM.
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


def pytest_report_header(config):
    if ON_TARGET_RUNTIME:
        return (f"second leg: pyspark {_pyspark_version()} with the libraries of {DATABRICKS_RUNTIME.spark_version} "
                f"({DATABRICKS_RUNTIME.constraints}); modules: {', '.join(SPARK_LEG_MODULES)}")
    return None


@pytest.fixture(scope="session")
def spark():
    """A local[2] session configured like `mlkit run` (AQE off, UI off, UTC, Arrow on)."""
    from mlkit.local.spark import local_session

    session = local_session(cores=2, app="mlkit-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A fresh MLflow server (sqlite + local artifacts in a temp dir); MLFLOW_TRACKING_URI points at it."""
    from mlkit.local import mlflow_server as srv

    state = Path(tmp_path_factory.mktemp("mlflow"))
    # The second leg has MLflow's client only (mlflow-skinny, as the cluster); the kit's venv serves.
    server = srv.ensure(state, free_port(), python=str(REPO / ".venv/bin/python") if ON_TARGET_RUNTIME else None)
    with use_tracking_uri(server.url):
        yield server
    srv.stop(server)


@pytest.fixture()
def experiment_prefix(tmp_path):
    """Jobs use the process-wide tracking URI (as under `mlkit run`): point it at the serving tests'
    sqlite registry and give the job a fresh experiment folder; the previous URI comes back after."""
    import mlflow
    from serve_helpers import registry_dir, sqlite_uri

    with use_tracking_uri(sqlite_uri(registry_dir())):
        prefix = f"/Shared/mlkit-test-{tmp_path.name}"
        mlflow.create_experiment(f"{prefix}/monitor", artifact_location=(tmp_path / "mlartifacts").as_uri())
        yield prefix
