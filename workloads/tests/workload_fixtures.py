"""What both test trees share (tests/ of the kit, workloads/tests/ of the wheel), registered once
as a plugin by the repository's conftest.py: ONE local Spark session per test session, the `spark`
mark by fixture use, and which modules the second CI leg collects. Imports nothing of the kit.

The second leg (.ci/run): the same tests in .venv-spark35, on the Databricks runtime's Spark and
libraries (scripts/setup.sh). That venv has the workloads and a test harness, not the kit's cloud
side (cdktn, checkov, ...), so there only the modules in SPARK_LEG are collected; every test in
them that takes the `spark` fixture is marked `spark`, and tests/test_target_runtime.py checks
that each such test lives in one of them.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from mlkit_workloads.target_runtime import DATABRICKS_RUNTIME

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

REPO = Path(__file__).resolve().parents[2]
# Test directory (relative to the repository) -> its modules the second leg runs.
SPARK_LEG = {
    "tests": ("test_workloads_spark.py", "test_target_runtime.py", "test_ingest_odd_files.py", "test_ingest_raw.py",
              "test_many_models_batching.py"),
    "workloads/tests": ("test_monitor_capture.py",),
}
# Spark tests of the kit's command line (`mlkit run` in a subprocess), not of the wheel: first leg only.
KIT_SPARK_MODULES = ("test_faults.py", "test_export.py")


def _pyspark_version() -> str:
    try:
        return version("pyspark")
    except PackageNotFoundError:
        return ""


PYSPARK = _pyspark_version()
ON_TARGET_RUNTIME = PYSPARK.startswith(DATABRICKS_RUNTIME.spark_minor + ".")


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """On the target runtime, every test module outside SPARK_LEG is left out."""
    if not ON_TARGET_RUNTIME or not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    leg = SPARK_LEG.get(collection_path.parent.resolve().relative_to(REPO).as_posix(), ())
    return True if collection_path.name not in leg else None


def pytest_collection_modifyitems(items):
    # The `spark` mark comes from fixture use (directly or through another fixture), never by hand:
    # `-m "not spark"` then leaves out exactly the tests that start the JVM.
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


def pytest_report_header(config):
    if ON_TARGET_RUNTIME:
        modules = [f"{d}/{m}" for d, ms in SPARK_LEG.items() for m in ms]
        return (f"second leg: pyspark {PYSPARK} with the libraries of {DATABRICKS_RUNTIME.spark_version} "
                f"({DATABRICKS_RUNTIME.constraints}); modules: {', '.join(modules)}")
    return None


@pytest.fixture(scope="session")
def spark():
    """A local[2] session configured like `mlkit run` (AQE off, UI off, UTC, Arrow on)."""
    from mlkit_workloads.local_spark import local_session

    session = local_session(cores=2, app="mlkit-tests")
    yield session
    session.stop()
