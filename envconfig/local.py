"""Settings of the local runner (`mlkit run --env local`): state directory, MLflow port, Spark cores."""

from __future__ import annotations

from mlkit_workloads.strict import Strict
from pydantic import Field


class Local(Strict):
    """Settings of the local runner (`mlkit run`)."""

    state_dir: str = ".mlkit/local"
    mlflow_port: int = Field(default=5055, ge=1024, le=65535)
    spark_cores: int = Field(default=2, ge=1, le=64)
