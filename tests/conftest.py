"""The kit's tests: ONE MLflow server for the whole test session (and, from workload_fixtures.py,
which the repository's conftest.py registers for both test trees, ONE local Spark session).

Both are expensive to start (Spark 4-8 s, MLflow ~8 s on two cores), so every test that needs
them shares them. Both bind 127.0.0.1 only and are stopped at the end of the session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import free_port, use_tracking_uri
from workload_fixtures import ON_TARGET_RUNTIME

REPO = Path(__file__).resolve().parent.parent


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
