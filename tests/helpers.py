"""Small helpers every test module may use (kit and workloads alike): a free port on 127.0.0.1,
and the process-wide MLflow tracking/registry URI set for a block and put back exactly after."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator

_URI_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def free_port() -> int:
    """A port nothing listened on a moment ago (closed again: a test may also use it as 'nothing there')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def use_tracking_uri(uri: str, registry_uri: str | None = None) -> Iterator[str]:
    """Point MLflow's process-wide tracking (and, given, registry) URI at ``uri`` inside the block.

    Afterwards exactly what was there comes back: the module state, often unset, and the
    environment variables ``set_tracking_uri`` exports (other tests' fixtures own them).
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri, {v: os.environ.get(v) for v in _URI_VARS})
    mlflow.set_tracking_uri(uri)
    if registry_uri is not None:
        mlflow.set_registry_uri(registry_uri)
    try:
        yield uri
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri, env = saved
        for var, value in env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
