"""The Databricks runtime the jobs run on, named once.

The environments' ``databricks.spark_version`` (envconfig/databricks.py) defaults to it and may not differ
from it, and the second test leg (.venv-spark35, scripts/setup.sh) installs the workloads under
its constraints file: the runtime's Spark and the library versions it preinstalls. Moving to
another runtime is one change here plus a constraints file for it; tests/test_target_runtime.py
fails until the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetRuntime:
    spark_version: str  # the Databricks runtime key the cluster policy and job clusters pin
    spark: str  # the Apache Spark version it runs (pyspark of the second test leg)
    python: str  # major.minor of its Python
    constraints: str  # its preinstalled libraries, relative to the repository root

    @property
    def spark_minor(self) -> str:
        return ".".join(self.spark.split(".")[:2])


DATABRICKS_RUNTIME = TargetRuntime(
    spark_version="15.4.x-scala2.12",  # Databricks Runtime 15.4 LTS
    spark="3.5.0",
    python="3.11",
    constraints="requirements/dbr-15.4-constraints.txt",
)
