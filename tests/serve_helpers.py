"""Small real models for the serving tests: XGBoost boosters per group, bundled with the meta
model's ``write_bundle`` and registered in a local MLflow (sqlite in a temp dir) as the
training job registers them (pyfunc ``ManyModels`` with the bundle as its artifact)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from mlkit_workloads.forecast.features import make_features
from mlkit_workloads.forecast.meta_model import ManyModels, write_bundle

KEYS, TS, FEATURES = ["store", "item"], "date", ["promo", "holiday"]


def training_frame(n_days: int = 120, seed: int = 0, level: float = 10.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_days, freq="D", tz="UTC")
    promo = (rng.random(n_days) < 0.2).astype(int)
    holiday = (rng.random(n_days) < 0.05).astype(int)
    sales = level * (1 + 0.5 * promo) * (1 + 0.1 * dates.dayofweek.to_numpy()) + rng.normal(0, 0.5, n_days)
    return pd.DataFrame({TS: dates, "promo": promo, "holiday": holiday, "sales": sales})


def booster_bytes(level: float, seed: int = 0, rounds: int = 5) -> bytes:
    import xgboost as xgb

    df = training_frame(seed=seed, level=level)
    x = make_features(df, TS, FEATURES)
    b = xgb.train({"max_depth": 3, "nthread": 1, "eta": 0.5}, xgb.DMatrix(x, label=df["sales"]), rounds)
    return bytes(b.save_raw("ubj"))


def group_keys(n: int) -> list[tuple[str, str]]:
    return [(f"S{i // 10:02d}", f"I{i % 10:02d}") for i in range(n)]


def make_bundle(directory: Path, n_groups: int, level: float = 10.0, broken: tuple = (),
                rounds: int = 5, shared_blob: bool = True) -> Path:
    """A bundle of ``n_groups`` groups. ``broken`` keys get bytes XGBoost cannot read.
    ``shared_blob``: every group gets the same booster (fast to build; loads are still per group)."""
    trained_at = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc).isoformat()
    spec = {"keys": KEYS, "timestamp": TS, "features": FEATURES, "target": "sales", "run_id": "test",
            "trained_at": trained_at}
    blob = booster_bytes(level, rounds=rounds) if shared_blob else None

    def groups():
        for i, key in enumerate(group_keys(n_groups)):
            b = b"not a booster" if key in broken else (blob or booster_bytes(level + i, seed=i, rounds=rounds))
            yield key, b, {"status": "ok", "trained_at": trained_at, "run_id": "test",
                           "metrics": {"wape": 0.1 + i / 1000, "mae": 1.0, "baseline_wape": float("nan")}}

    write_bundle(directory, spec, groups())
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

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
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
    finally:
        mlflow.set_tracking_uri(previous)
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
import functools  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


@functools.lru_cache(maxsize=None)
def registry_dir() -> Path:
    """A temp sqlite MLflow store shared by every serving test module (created once: ~3 s)."""
    import mlflow

    d = Path(tempfile.mkdtemp(prefix="mlkit-serve-test-"))
    atexit.register(shutil.rmtree, d, True)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(sqlite_uri(d))
    try:
        experiment_in(d)
    finally:
        mlflow.set_tracking_uri(previous)
    return d


@functools.lru_cache(maxsize=None)
def registered(name: str, n_groups: int, broken: tuple = (), level: float = 10.0, rounds: int = 5) -> str:
    """Register (once per session) a bundle under ``name`` with the champion alias on it."""
    d = registry_dir()
    bundle = make_bundle(Path(tempfile.mkdtemp(dir=d)) / "bundle", n_groups, level=level, broken=broken, rounds=rounds)
    return register(sqlite_uri(d), name, bundle)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
