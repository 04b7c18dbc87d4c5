"""Small real models for the serving and monitoring tests: per-group forecasters trained by the
forecast job's own core (``forecast.train.train_group``) on small daily series, packed with the meta
model's ``write_bundle`` as train_many packs them (zstd, one file, ``kind: forecaster``) and
registered in a local MLflow (sqlite in a temp dir) as the training job registers them (pyfunc
``ManyModels`` with the bundle as its artifact).

Training costs ~2 s per model, so a bundle of N groups reuses a few trained models: group i gets the
XGBoost model (uses promo/holiday) when i is even and the statsforecast one (no features) when odd;
every group is still loaded, cached and evicted on its own."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import numpy as np
import pandas as pd
from helpers import free_port, use_tracking_uri

from mlkit_workloads.forecast.features import make_features
from mlkit_workloads.forecast.frequency import future_dates, plan
from mlkit_workloads.forecast.meta_model import CODEC, FORECASTER, ManyModels, compress, write_bundle
from mlkit_workloads.forecast.train import metric_names, train_group
from mlkit_workloads.settings import Forecast, WorkloadSettings

KEYS, TS, FEATURES = ["store", "item"], "date", ["promo", "holiday"]
START, DAYS, HORIZON = "2024-01-01", 120, 7
LAST = pd.Timestamp(START) + pd.Timedelta(days=DAYS - 1)  # every test group's last trained period
TRAINED_AT = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc).isoformat()
# The XGBoost groups: their data has a strong promo effect, so mlforecast's XGBoost beats the baseline.
XGB, STATS = "xgboost", "stats"


def served(forecast: str | None = None, classifier: str | None = None, **serving) -> WorkloadSettings:
    """Workload settings serving the registered models named (short names; None: that job's model is
    not served), with ``serving`` as the rest of ``workloads.serving``."""
    models = [job for job, name in (("forecast", forecast), ("classifier", classifier)) if name]
    ws = {"serving": {"models": models, **serving}}
    for job, name in (("forecast", forecast), ("classifier", classifier)):
        if name:
            ws[job] = {"registered_model": name}
    return WorkloadSettings.model_validate(ws)


def forecast_settings(kind: str = XGB, rounds: int = 40) -> Forecast:
    return Forecast.model_validate({
        "columns": {"group_keys": KEYS, "timestamp": TS, "target": "sales", "features": FEATURES},
        "frequency": "D", "horizon": HORIZON, "models": ["xgboost"] if kind == XGB else ["auto_ets"],
        "search": {"max_rounds": rounds}})


def training_frame(n_days: int = DAYS, seed: int = 0, level: float = 10.0) -> pd.DataFrame:
    """A daily series: level x (1 + 2 promo) + noise, with a few holidays."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(START, periods=n_days, freq="D", tz="UTC")
    promo = (rng.random(n_days) < 0.3).astype(int)
    holiday = (rng.random(n_days) < 0.05).astype(int)
    sales = level * (1 + 2 * promo) + rng.normal(0, 0.03 * level, n_days)
    return pd.DataFrame({TS: dates, "promo": promo, "holiday": holiday, "sales": sales})


def future(n: int = 1, start: int = 1) -> list[str]:
    """ISO dates of the test groups' periods ``start`` to ``start + n - 1`` after their last trained one."""
    return [d.date().isoformat() for d in future_dates(LAST, "D", start + n - 1)[start - 1:]]


@functools.lru_cache(maxsize=None)
def trained(kind: str = XGB, level: float = 10.0, rounds: int = 40, seed: int = 0, n_days: int = DAYS):
    """(pickled model, its train_group result) for one group's series, trained once per session."""
    import cloudpickle

    cfg = forecast_settings(kind, rounds)
    result = train_group(training_frame(n_days, seed=seed, level=level), cfg, plan(cfg, "D"), seed=seed)
    assert result.status == "ok", (kind, result.reason, result.candidates)
    assert (result.model_type == "xgboost") == (kind == XGB), (kind, result.model_type, result.candidates)
    return cloudpickle.dumps(result.model), result


def spec(levels=(80, 95)) -> dict:
    cfg = forecast_settings()
    return {"keys": KEYS, "timestamp": TS, "features": FEATURES, "target": "sales", "run_id": "test",
            "trained_at": TRAINED_AT, "levels": list(levels), **plan(cfg, "D").as_dict()}


def group_keys(n: int) -> list[tuple[str, str]]:
    return [(f"S{i // 10:02d}", f"I{i % 10:02d}") for i in range(n)]


def kind_of(key: tuple[str, str], xgb_every: int = 2) -> str:
    return XGB if int(key[1][1:]) % xgb_every == 0 else STATS


def make_bundle(directory: Path, n_groups: int, level: float = 10.0, broken: tuple = (), rounds: int = 40,
                n_days: int = DAYS, xgb_every: int = 2) -> Path:
    """A bundle of ``n_groups`` groups (XGBoost on items divisible by ``xgb_every``: the even ones by
    default; statsforecast on the others), trained on ``n_days`` days from START; ``broken`` keys get
    bytes that do not unpickle."""
    names = metric_names([80, 95])

    def groups():
        for i, key in enumerate(group_keys(n_groups)):
            raw, r = trained(kind_of(key, xgb_every), level, rounds, n_days=n_days)
            raw = b"not a model" if key in broken else raw
            yield key, compress(raw), {
                "status": "ok", "kind": FORECASTER, "model_type": r.model_type, "trained_at": TRAINED_AT,
                "run_id": "test", "bytes": len(raw), "first_ts": r.first_ts, "last_ts": r.last_ts,
                "metrics": {**{m: float(r.metrics.get(m, np.nan)) for m in names}, "wape": 0.1 + i / 1000}}

    write_bundle(directory, spec(), groups(), packed=True, codec=CODEC)
    return directory


def calendar_bundle(directory: Path, n_groups: int, level: float = 10.0) -> Path:
    """A bundle as versions before forecasters wrote it: one XGBoost booster on calendar features
    per group (the meta model still serves these)."""
    import xgboost as xgb

    df = training_frame(level=level)
    b = xgb.train({"max_depth": 3, "nthread": 1, "eta": 0.5}, xgb.DMatrix(make_features(df, TS, FEATURES),
                                                                       label=df["sales"]), 5)
    blob = bytes(b.save_raw("ubj"))
    old_spec = {"keys": KEYS, "timestamp": TS, "features": FEATURES, "target": "sales", "run_id": "test",
                "trained_at": TRAINED_AT}
    write_bundle(directory, old_spec, ((key, blob, {"status": "ok", "trained_at": TRAINED_AT, "metrics": {"wape": 0.1}})
                                       for key in group_keys(n_groups)))
    return directory


def register(tracking_uri: str, name: str, bundle: Path, alias: str | None = "champion",
             train_table: str | None = None, train_version: int | None = None, train_path: str | None = None) -> str:
    """Log the bundle as the training job does and register it; returns the version.
    ``name`` is the short model name; it is registered under its full name in the default registry
    (catalog.schema.name, what the scoring service loads). The process-wide tracking URI is restored
    afterwards (other tests' fixtures own it)."""
    import mlflow
    from mlkit_workloads.model_names import ModelRegistry, full_model_name

    name = full_model_name(ModelRegistry(), name)

    with use_tracking_uri(tracking_uri):
        exp_id = experiment_in(Path(tracking_uri.removeprefix("sqlite:///")).parent)
        with mlflow.start_run(experiment_id=exp_id) as run:
            if train_table:
                mlflow.log_params({"data_table": train_table, "data_table_version": train_version,
                                   **({"data_path": train_path} if train_path else {})})
            info = mlflow.pyfunc.log_model(name="model", python_model=ManyModels(), artifacts={"bundle": str(bundle)},
                                           pip_requirements=["xgboost", "pandas"], registered_model_name=name)
        version = str(info.registered_model_version)
        if alias:
            mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version)
    return version


def experiment_in(directory: Path, name: str = "/Shared/mlkit-test/forecast") -> str:
    """The test experiment, with its artifacts under ``directory`` (not ./mlruns in the repo)."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(name, artifact_location=(directory / "artifacts").as_uri())


def sqlite_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


# --------------------------------------------------------------------------- one registry per session
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


@functools.lru_cache(maxsize=None)
def registry_dir() -> Path:
    """A temp sqlite MLflow store shared by every serving test module (created once: ~3 s)."""

    d = Path(tempfile.mkdtemp(prefix="mlkit-serve-test-"))
    atexit.register(shutil.rmtree, d, True)
    with use_tracking_uri(sqlite_uri(d)):
        experiment_in(d)
    return d


@functools.lru_cache(maxsize=None)
def registered(name: str, n_groups: int, broken: tuple = (), level: float = 10.0, rounds: int = 40) -> str:
    """Register (once per session) a bundle under ``name`` with the champion alias on it."""
    d = registry_dir()
    bundle = make_bundle(Path(tempfile.mkdtemp(dir=d)) / "bundle", n_groups, level=level, broken=broken, rounds=rounds)
    return register(sqlite_uri(d), name, bundle)


class LiveServer:
    """uvicorn on 127.0.0.1 in a thread; ``stop`` shuts it down (lifespan included)."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def group_metrics(name: str, version: str, n_groups: int, level: float = 10.0, rounds: int = 40) -> pd.DataFrame:
    """The group-metrics rows train_many writes for a bundle of ``make_bundle`` (the monitor job reads
    each group's backtest predictions from them)."""
    import json

    from mlkit_workloads.model_names import ModelRegistry, full_model_name

    name = full_model_name(ModelRegistry(), name)  # as train_many writes it: the registered (full) name
    rows = []
    for key in group_keys(n_groups):
        _, r = trained(kind_of(key), level, rounds)
        rows.append({"store": key[0], "item": key[1], "status": "ok", "model_type": r.model_type,
                     "backtest": json.dumps(r.backtest), "model_name": name, "model_version": str(version)})
    return pd.DataFrame(rows)


def training_table(store) -> int:
    """The training table of the monitor tests: three groups' series."""
    frames = []
    for i, item in enumerate(["I00", "I01", "I02"]):
        frames.append(training_frame(seed=i).assign(store="S00", item=item))
    return store.append("forecast_sales", pd.concat(frames, ignore_index=True))


def serve_shifted_traffic(client) -> None:
    """12 requests per group of the 7 periods after the history. I00 (XGBoost): promo and holiday as
    often as in training; I02 (XGBoost): promo on in every period; I01 (statsforecast): dates only."""
    rng = np.random.default_rng(5)
    for item in ("I00", "I01", "I02"):
        for _ in range(12):
            rows = [{"date": d} for d in future(HORIZON)]
            if item != "I01":
                for row in rows:
                    row.update(promo=1.0 if item == "I02" else float(rng.random() < 0.3),
                               holiday=float(rng.random() < 0.05))
            r = client.post("/v1/predict", json={"group": {"store": "S00", "item": item}, "rows": rows})
            assert r.status_code == 200, r.text


def registered_with_metrics(store, name: str, table_version: int, **kw) -> str:
    """A 3-group bundle registered as trained on ``forecast_sales`` v``table_version``, with the
    group-metrics rows (backtests) its training run would have written."""
    import tempfile

    bundle = make_bundle(Path(tempfile.mkdtemp(dir=registry_dir())) / "bundle", 3)
    version = register(sqlite_uri(registry_dir()), name, bundle, train_table="forecast_sales",
                       train_version=table_version, **kw)
    store.append("forecast_group_metrics", group_metrics(name, version, 3))
    return version


# --------------------------------------------------------------------------- the classifier
CLASSIFIER_ROWS = 3000  # of ISLP's Default (10k): enough positives (~100) for a threshold, ~2 s to fit


@functools.lru_cache(maxsize=None)
def classifier_data():
    """(x, y) of a stratified share of ISLP's Default, as the classifier job reads it."""
    from mlkit_workloads.classifier.model import split, xy
    from mlkit_workloads.data.islp import default_csv
    from mlkit_workloads.settings import Classifier

    cfg = Classifier()
    x, y = xy(pd.read_csv(default_csv()), cfg)
    _, x_small, _, y_small = split(x, y, CLASSIFIER_ROWS / len(y), seed=3)
    return x_small, y_small


@functools.lru_cache(maxsize=None)
def fitted_classifier(n_estimators: int = 30):
    """The classifier job's own pipeline (impute/encode + ADASYN + XGBoost) with its tuned-threshold
    wrapper, fitted on a small share of Default: the model train_classifier registers, smaller."""
    from mlkit_workloads.classifier.model import best_threshold, build, split, with_threshold
    from mlkit_workloads.settings import Classifier

    cfg = Classifier()
    x, y = classifier_data()
    x_fit, x_val, y_fit, y_val = split(x, y, 0.3, seed=7)
    params = {"n_estimators": n_estimators, "max_depth": 3, "learning_rate": 0.2}
    threshold = best_threshold(y_val, build(cfg, params).fit(x_fit, y_fit).predict_proba(x_val)[:, 1])
    return with_threshold(build(cfg, params), threshold).fit(x, y)


@functools.lru_cache(maxsize=None)
def registered_classifier(name: str, n_estimators: int = 30, train_table: str | None = None,
                          train_version: int | None = None) -> str:
    """Register (once per session) the small classifier under ``name`` as train_classifier logs it,
    with the champion alias on it; returns the version."""
    import mlflow

    from mlkit_workloads.model_names import ModelRegistry, full_model_name
    from mlkit_workloads.train_classifier import log_model

    model = fitted_classifier(n_estimators)
    x, _ = classifier_data()
    full = full_model_name(ModelRegistry(), name)
    uri = sqlite_uri(registry_dir())
    with use_tracking_uri(uri):
        with mlflow.start_run(experiment_id=experiment_in(registry_dir())):
            mlflow.log_params({"threshold": float(model.threshold),
                               **({"data_table": train_table, "data_table_version": train_version}
                                  if train_table else {})})
            info = log_model(model, x.head(5), full)
        version = str(info.registered_model_version)
        mlflow.MlflowClient(uri).set_registered_model_alias(full, "champion", version)
    return version
