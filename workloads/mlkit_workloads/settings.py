"""Workload settings: the part of an environment file that the jobs read.

The kit's environment schema embeds :class:`WorkloadSettings` under ``workloads:``; the
stacks hand the resolved settings to each Databricks task as a JSON file, and the local
runner passes the same object in memory. Every model forbids unknown keys so a typo in an
environment file is an error that names the field, not a silently ignored setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .model_names import ModelRegistry
from .monitor.settings import MonitoringSettings
from .strict import Strict
from .serve.settings import ServingSettings


class Source(Strict):
    """Where ingest reads from. ``path`` for files, ``jdbc_url`` + ``table`` for a database."""

    format: Literal["csv", "parquet", "jdbc", "synthetic", "islp_default"] = "synthetic"
    path: str | None = None
    # When set, ``path`` is relative to this container of the environment's storage account;
    # the stacks resolve it to an abfss:// URL (names come from the naming module, not from here).
    container: Literal["raw", "curated"] | None = None
    jdbc_url: str | None = None
    table: str | None = None
    # Partitioned JDBC reads (Spark's partitionColumn/lowerBound/upperBound/numPartitions).
    partition_column: str | None = None
    lower_bound: int | None = None
    upper_bound: int | None = None
    num_partitions: int = Field(default=4, ge=1, le=256)
    # Name of a secret in the environment's secret scope holding the JDBC password.
    password_secret: str | None = None

    @model_validator(mode="after")
    def _fields_for_format(self) -> "Source":
        if self.format in ("csv", "parquet") and not self.path:
            raise ValueError(f"source format {self.format!r} needs 'path'")
        if self.format == "jdbc" and not (self.jdbc_url and self.table):
            raise ValueError("source format 'jdbc' needs 'jdbc_url' and 'table'")
        if self.format == "jdbc" and self.jdbc_url and "password=" in self.jdbc_url.lower():
            raise ValueError("put the JDBC password in the secret scope ('password_secret'), not in 'jdbc_url'")
        return self


class ForecastColumns(Strict):
    group_keys: list[str] = Field(default_factory=lambda: ["store", "item"], min_length=1)
    timestamp: str = "date"
    target: str = "sales"
    features: list[str] = Field(default_factory=lambda: ["promo", "holiday"])


class SearchBudget(Strict):
    n_trials: int = Field(default=8, ge=1, le=1000)
    timeout_seconds: float | None = Field(default=None, gt=0)
    max_rounds: int = Field(default=100, ge=1, le=10000)
    early_stopping_rounds: int = Field(default=10, ge=1)


class ForecastGates(Strict):
    min_share_ok: float = Field(default=0.8, ge=0, le=1)
    max_median_wape: float = Field(default=0.35, gt=0)
    # A group may be at most this much worse (relative WAPE) than its naive seasonal baseline.
    max_worse_than_baseline: float = Field(default=0.10, ge=0)


class SyntheticSize(Strict):
    """Size of the built-in store x item sales generator (source format ``synthetic``)."""

    stores: int = Field(default=5, ge=1, le=1000)
    items: int = Field(default=6, ge=1, le=1000)
    days: int = Field(default=730, ge=30, le=3650)
    seed: int = 7


class Forecast(Strict):
    source: Source = Source()
    synthetic: SyntheticSize = SyntheticSize()
    columns: ForecastColumns = ForecastColumns()
    season_length: int = Field(default=7, ge=1)
    validation_periods: int = Field(default=28, ge=1)
    min_train_rows: int = Field(default=90, ge=10)
    search: SearchBudget = SearchBudget()
    gates: ForecastGates = ForecastGates()
    registered_model: str = "forecast"
    # Meta model: group models kept in memory at once (count, and total booster bytes).
    lru_max_models: int = Field(default=256, ge=1)
    lru_max_bytes: int = Field(default=512 * 2**20, ge=2**20)
    # score: the last N periods of every group in the latest table version.
    score_periods: int = Field(default=28, ge=1)


class ClassifierColumns(Strict):
    target: str = "default"
    positive_label: str = "Yes"
    features: list[str] = Field(default_factory=lambda: ["student", "balance", "income"])
    categorical: list[str] = Field(default_factory=lambda: ["student"])


class ClassifierGates(Strict):
    min_roc_auc: float = Field(default=0.85, ge=0, le=1)
    min_kappa: float = Field(default=0.3, ge=-1, le=1)
    min_f1: float = Field(default=0.0, ge=0, le=1)


class Classifier(Strict):
    source: Source = Source(format="islp_default")
    columns: ClassifierColumns = ClassifierColumns()
    test_size: float = Field(default=0.25, gt=0, lt=1)
    oversampling: Literal["none", "adasyn", "smote"] = "adasyn"
    search: SearchBudget = SearchBudget(n_trials=6)
    gates: ClassifierGates = ClassifierGates()
    registered_model: str = "classifier"


class Tracking(Strict):
    # Databricks wants absolute workspace paths for experiments; MLflow OSS accepts the same names.
    experiment_prefix: str = "/Shared/mlkit"
    registry: ModelRegistry = ModelRegistry()


class Tables(Strict):
    """Where the Delta tables live: a directory locally, an abfss:// or /Volumes path on Databricks.

    ``None`` means "the runner decides": the local runner uses ``<local.state_dir>/tables``;
    a Databricks task without a root is an error (the stacks must set it).
    """

    root: str | None = None


class WorkloadSettings(Strict):
    forecast: Forecast = Forecast()
    classifier: Classifier = Classifier()
    tracking: Tracking = Tracking()
    tables: Tables = Tables()
    # The scoring service (AKS / `mlkit serve`) and the monitoring job.
    serving: ServingSettings = ServingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
