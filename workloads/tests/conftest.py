"""The workloads' tests: they import the wheel's package (mlkit_workloads) and nothing of the kit.
The fixtures both test trees share (``spark``) are in workload_fixtures.py."""

from __future__ import annotations

import pytest


@pytest.fixture()
def experiment_prefix(tmp_path):
    """Jobs use the process-wide tracking URI (as under `mlkit run`): point it at the serving tests'
    sqlite registry and give the job a fresh experiment folder; the previous URI comes back after."""
    import mlflow
    from helpers import use_tracking_uri
    from serve_helpers import registry_dir, sqlite_uri

    with use_tracking_uri(sqlite_uri(registry_dir())):
        prefix = f"/Shared/mlkit-test-{tmp_path.name}"
        mlflow.create_experiment(f"{prefix}/monitor", artifact_location=(tmp_path / "mlartifacts").as_uri())
        yield prefix
