"""Workload settings: the part of an environment file that the jobs read.

The kit's environment schema embeds :class:`WorkloadSettings` under ``workloads:``; the
stacks hand the resolved settings to each Databricks task as a JSON file, and the local
runner passes the same object in memory. Every model forbids unknown keys so a typo in an
environment file is an error that names the field, not a silently ignored setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .export.settings import ExportSettings
from .model_names import ModelRegistry
from .monitor.settings import MonitoringSettings
from .strict import Strict
from .serve.settings import ServingSettings


class Source(Strict):
    """Where ingest reads from. ``path`` for files, ``jdbc_url`` + ``table`` for a database."""

    format: Literal["csv", "parquet", "jdbc", "synthetic", "islp_default"] = "synthetic"
    """`csv` (header row) or `parquet` files at `path`, a `jdbc` table, or a built-in data set."""
    path: str | None = None
    """File or folder for csv/parquet: local, abfss://, /Volumes/..., or relative to `container`."""
    # When set, ``path`` is relative to this container of the environment's storage account;
    # the stacks resolve it to an abfss:// URL (names come from the naming module, not from here).
    container: Literal["raw", "curated"] | None = None
    """Storage container of the environment that `path` is relative to (cloud environments)."""
    jdbc_url: str | None = None
    """JDBC URL without the password (that goes in `password_secret`)."""
    table: str | None = None
    """The JDBC table (or a parenthesised query with an alias)."""
    # Partitioned JDBC reads (Spark's partitionColumn/lowerBound/upperBound/numPartitions).
    partition_column: str | None = None
    """Numeric column to split a JDBC read into `num_partitions` parallel range queries."""
    lower_bound: int | None = None
    """Lowest `partition_column` value of the ranges."""
    upper_bound: int | None = None
    """Highest `partition_column` value of the ranges."""
    num_partitions: int = Field(default=4, ge=1, le=256)
    """Parallel JDBC queries."""
    # Name of a secret in the environment's secret scope holding the JDBC password.
    password_secret: str | None = None
    """Secret (in the environment's secret scope) holding the JDBC password."""

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
    """The column mapping: which columns of your data are the series keys, the time, the value."""

    group_keys: list[str] = Field(default_factory=lambda: ["store", "item"], min_length=1)
    """Columns that together name one series (one model per distinct combination), e.g. [store, item]."""
    timestamp: str = "date"
    """The column with each row's period (a date or timestamp; strings are parsed)."""
    target: str = "sales"
    """The numeric column to forecast. Empty values are missing observations (see `gaps`)."""
    features: list[str] = Field(default_factory=lambda: ["promo", "holiday"])
    """Numeric exogenous columns the tree model uses. Forecasting the future needs their future
    values: give them in `future_features` (or map none: `features: []`)."""


class SearchBudget(Strict):
    """How hard to search for a model's hyperparameters (Optuna, TPE sampler)."""

    n_trials: int = Field(default=8, ge=1, le=1000)
    """Optuna trials. Forecast: per group, for its XGBoost candidate, each trial one XGBoost fit with
    early stopping (the first trial is the untuned default). Classifier: one child run each."""
    timeout_seconds: float | None = Field(default=None, gt=0)
    """Stop a search after this many seconds even if `n_trials` are not done (forecast: per group).
    None: no time limit. With a limit the number of trials, and so the result, can vary between runs."""
    max_rounds: int = Field(default=100, ge=1, le=10000)
    """Most boosting rounds (trees) per XGBoost fit. Forecast: early stopping picks the group's tree
    count up to this. Classifier: the largest tree count the search tries."""
    early_stopping_rounds: int = Field(default=10, ge=1)
    """Forecast: stop adding trees in a trial after this many rounds without a better validation MAE
    (the validation slice: the last `horizon` periods before the first backtest window). The
    classifier does not stop early (it searches the tree count)."""


class ForecastGates(Strict):
    """Promotion gates, judged on the rolling-origin backtest metrics of the version just trained."""

    min_share_ok: float = Field(default=0.8, ge=0, le=1)
    """Least share of groups (of every group in the data) that must train."""
    max_median_wape: float = Field(default=0.35, gt=0)
    """Largest median backtest WAPE over the trained groups."""
    max_worse_than_baseline: float = Field(default=0.10, ge=0)
    """A group's chosen model may be at most this much worse (relative WAPE) than its seasonal naive."""
    min_share_beating_baseline: float = Field(default=0.5, ge=0, le=1)
    """Least share of trained groups whose chosen model beats the seasonal naive in the backtest
    (a group where nothing beats it is served the seasonal naive)."""


class SyntheticSize(Strict):
    """Size of the built-in store x item sales generator (source format ``synthetic``)."""

    stores: int = Field(default=5, ge=1, le=1000)
    """Stores in the generated data."""
    items: int = Field(default=6, ge=1, le=1000)
    """Items per store (one series per store x item)."""
    days: int = Field(default=730, ge=30, le=3650)
    """Days of history per series."""
    seed: int = 7
    """Random seed: the same seed gives the same data."""


class Gaps(Strict):
    """What to do with missing periods inside a series (leading and trailing ones are trimmed first)."""

    fill: Literal["interpolate", "zero", "forward"] = "interpolate"
    """How a missing period's value is filled: linear interpolation, 0 (no sales), or the last value."""
    max_missing_share: float = Field(default=0.2, ge=0, le=1)
    """Skip a group whose span (first to last observed period) has more missing periods than this share."""


MODEL_TYPES = ("seasonal_naive", "auto_ets", "auto_theta", "auto_arima", "xgboost")


class Forecast(Strict):
    """The many-models forecast job: ingest, train one model per group, gate, forecast the future."""

    source: Source = Source()
    """Where ingest reads the history from."""
    synthetic: SyntheticSize = SyntheticSize()
    """Size of the synthetic data (source format `synthetic`)."""
    columns: ForecastColumns = ForecastColumns()
    """The column mapping of your data."""
    frequency: str | None = None
    """The data's period: `D` daily, `W` weekly (or `W-MON`...), `MS` monthly (month starts), `ME`
    (month ends), `QS`/`QE` quarterly, `YS` yearly; pandas offset aliases. None: inferred from the
    data (the run says what it inferred)."""
    season_length: int | None = Field(default=None, ge=1)
    """Periods in one season (none: from the frequency, 7 daily, 52 weekly, 12 monthly, 4 quarterly)."""
    horizon: int | None = Field(default=None, ge=1)
    """Periods forecast after the last observation, and the length of each backtest window (none:
    from the frequency, 28 daily, 13 weekly, 12 monthly, 8 quarterly)."""
    backtest_windows: int = Field(default=3, ge=1, le=20)
    """Rolling-origin backtest: this many windows of `horizon` periods at the end of each series;
    every candidate model is fitted before each window and judged on it."""
    min_train_periods: int | None = Field(default=None, ge=4)
    """Least periods a model is fitted on in the earliest backtest window (none: two seasons, at least
    `horizon`). A group with fewer is skipped."""
    max_history_periods: int | None = Field(default=None, ge=8)
    """The models see the last this many periods of each series (none: by frequency, 730 daily, 260
    weekly, 120 monthly, 60 quarterly, 40 yearly; at least what the plan needs plus a season). Older
    periods say little about the next horizon and cost every candidate time."""
    models: list[Literal["seasonal_naive", "auto_ets", "auto_theta", "auto_arima", "xgboost"]] = Field(
        default_factory=lambda: ["auto_ets", "auto_theta", "xgboost"], min_length=1)
    """Candidate models per group (statsforecast's AutoETS/AutoTheta/AutoARIMA, mlforecast's XGBoost with
    lags, rolling means and differencing). The seasonal naive baseline is always a candidate too."""
    levels: list[int] = Field(default_factory=lambda: [80, 95], min_length=1)
    """Prediction interval levels in percent."""
    gaps: Gaps = Gaps()
    """Missing periods inside a series."""
    future_features: Source | None = None
    """Where the future values of `columns.features` come from (same keys and timestamp columns).
    None: the synthetic generator's own calendar for source `synthetic`, else none (groups whose model
    needs features are then reported as not forecast)."""
    search: SearchBudget = SearchBudget()
    """Per-group hyperparameter search of the XGBoost candidate (trials, time limit, trees, early stopping)."""
    gates: ForecastGates = ForecastGates()
    """Promotion gates."""
    registered_model: str = "forecast"
    """Name of the registered model (one version per training run)."""
    lru_max_models: int = Field(default=256, ge=1)
    """Meta model: group models kept in memory at once."""
    lru_max_bytes: int = Field(default=512 * 2**20, ge=2**20)
    """Meta model: total bytes of the group models kept in memory."""

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        bad = [x for x in v if not 0 < x < 100]
        if bad:
            raise ValueError(f"interval levels are percentages between 0 and 100 (got {bad})")
        return sorted(set(v))

    @model_validator(mode="after")
    def _fits_frequency(self) -> "Forecast":
        if self.frequency is not None:
            from .forecast.frequency import plan

            plan(self, self.frequency)  # raises ValueError naming the setting that does not fit
        return self


class ClassifierColumns(Strict):
    target: str = "default"
    """The label column."""
    positive_label: str = "Yes"
    """The label value that is the positive (rare) class."""
    features: list[str] = Field(default_factory=lambda: ["student", "balance", "income"])
    """Input columns."""
    categorical: list[str] = Field(default_factory=lambda: ["student"])
    """Input columns that are categories (one-hot encoded); the rest are numeric."""


class ClassifierGates(Strict):
    min_roc_auc: float = Field(default=0.85, ge=0, le=1)
    """Least test ROC AUC to promote."""
    min_kappa: float = Field(default=0.3, ge=-1, le=1)
    """Least test Cohen's kappa to promote."""
    min_f1: float = Field(default=0.0, ge=0, le=1)
    """Least test F1 to promote."""


class Classifier(Strict):
    source: Source = Source(format="islp_default")
    """Where ingest reads the labelled rows from."""
    columns: ClassifierColumns = ClassifierColumns()
    """The column mapping."""
    test_size: float = Field(default=0.25, gt=0, lt=1)
    """Share of rows held out (stratified) for the test metrics."""
    oversampling: Literal["none", "adasyn", "smote"] = "adasyn"
    """How the rare class is oversampled in training."""
    search: SearchBudget = SearchBudget(n_trials=6)
    """Optuna search budget."""
    gates: ClassifierGates = ClassifierGates()
    """Promotion gates on the test metrics."""
    registered_model: str = "classifier"
    """Name of the registered model."""


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
    """Directory (local), abfss:// or /Volumes path of the Delta tables; none: the runner decides."""


class WorkloadSettings(Strict):
    forecast: Forecast = Forecast()
    """The many-models forecast job."""
    classifier: Classifier = Classifier()
    """The imbalanced classifier job."""
    tracking: Tracking = Tracking()
    """MLflow experiments (and registry)."""
    tables: Tables = Tables()
    """Where the Delta tables live."""
    # The scoring service (AKS / `mlkit serve`) and the monitoring job.
    serving: ServingSettings = ServingSettings()
    """The real-time scoring service (AKS / `mlkit serve`)."""
    monitoring: MonitoringSettings = MonitoringSettings()
    """The drift monitoring job."""
    export: ExportSettings = ExportSettings()
    """Batch predictions into a PostgreSQL table and view for BI (the forecast job's export task)."""
