"""train_many: one tuned model per group with groupBy().applyInPandas(), one MLflow run, one bundle.

Spark and MLflow stay at the edges: the per-group work is ``forecast.train.train_group`` on a
pandas frame. Models travel back to the driver as bytes in the result rows and are logged as
one meta model (per-group log_model calls would cost more than the training itself).
"""

from __future__ import annotations

import tempfile
import zlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .forecast.meta_model import ManyModels, write_bundle
from .forecast.train import METRICS, train_group, utc_now
from .runtime import TABLES, Runtime, code_version, experiment
from .tracking import check_reachable, pip_requirements

PACKAGE_DIR = Path(__file__).resolve().parent


def result_schema(keys: list[str]) -> str:
    cols = [f"`{k}` string" for k in keys]
    cols += ["status string", "reason string", "n_rows long", "n_train long", "n_valid long"]
    cols += [f"{m} double" for m in METRICS]
    cols += ["best_params string", "best_iteration long", "n_trials long", "fit_seconds double", "model binary"]
    return ", ".join(cols)


def make_udf(cfg, keys: list[str]):
    """The function applyInPandas runs once per group (closure holds only settings)."""

    def fit(key: tuple, pdf: pd.DataFrame) -> pd.DataFrame:
        seed = zlib.crc32("|".join(map(str, key)).encode())  # stable across processes
        row = train_group(pdf, cfg, seed=seed).row()
        return pd.DataFrame([{**{k: str(v) for k, v in zip(keys, key)}, **row}])

    return fit


def train_groups(spark, sdf, cfg) -> pd.DataFrame:
    """Spark edge: one task per group, one core per model. Returns one row per group."""
    keys = list(cfg.columns.group_keys)
    cores = spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    spark.conf.set("spark.sql.shuffle.partitions", str(3 * cores))
    cols = [*keys, cfg.columns.timestamp, cfg.columns.target, *cfg.columns.features]
    return (sdf.select(*cols).groupBy(*keys)
            .applyInPandas(make_udf(cfg, keys), result_schema(keys))
            .toPandas())


def summarize(results: pd.DataFrame) -> dict[str, float]:
    ok = results[results.status == "ok"]
    out = {"groups": len(results), "groups_ok": len(ok), "groups_skipped": int((results.status == "skipped").sum()),
           "groups_failed": int((results.status == "failed").sum()),
           "share_ok": len(ok) / len(results) if len(results) else 0.0}
    for m in ("mae", "rmse", "wape", "baseline_wape"):
        vals = ok[m].dropna()
        if len(vals):
            out[f"median_{m}"] = float(vals.median())
            out[f"p90_{m}"] = float(np.percentile(vals, 90))
    return out


def run(rt: Runtime) -> dict:
    import mlflow

    cfg = rt.settings.forecast
    keys = list(cfg.columns.group_keys)
    table, version = rt.context.get("ingest", "table"), int(rt.context.get("ingest", "table_version"))
    check_reachable()
    experiment(rt, "forecast")
    sdf = rt.tables.read_spark(rt.spark, table, version)
    rt.say(f"training one model per group of {table} v{version}")
    t0 = time.perf_counter()
    results = train_groups(rt.spark, sdf, cfg)
    train_seconds = time.perf_counter() - t0
    trained_at = utc_now()
    summary = summarize(results)

    with mlflow.start_run(run_name=f"train_many {rt.env}") as run:
        t1 = time.perf_counter()
        mlflow.log_params({"data_table": table, "data_table_version": version, "data_path": rt.tables.path(table),
                           "code_version": code_version(), "env": rt.env, "n_trials": cfg.search.n_trials,
                           "max_rounds": cfg.search.max_rounds, "early_stopping_rounds": cfg.search.early_stopping_rounds,
                           "group_keys": ",".join(keys), "validation_periods": cfg.validation_periods})
        mlflow.log_metrics({**summary, "train_seconds": train_seconds})
        mlflow.log_table(results.drop(columns=["model"]), "group_metrics.json")
        ok = results[results.status == "ok"]
        spec = {"keys": keys, "timestamp": cfg.columns.timestamp, "features": list(cfg.columns.features),
                "target": cfg.columns.target, "lru_max_models": cfg.lru_max_models, "lru_max_bytes": cfg.lru_max_bytes,
                "run_id": run.info.run_id, "trained_at": trained_at.isoformat()}
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "bundle"
            write_bundle(bundle, spec, (
                (tuple(r[k] for k in keys), r["model"],
                 {"status": "ok", "trained_at": trained_at.isoformat(), "run_id": run.info.run_id,
                  "best_iteration": int(r["best_iteration"]),
                  "metrics": {m: float(r[m]) for m in METRICS}})
                for _, r in ok.iterrows()))
            example = sdf.where(" AND ".join(f"`{k}` = '{ok.iloc[0][k]}'" for k in keys)).limit(5).toPandas() \
                if len(ok) else None
            info = mlflow.pyfunc.log_model(
                name="model", python_model=ManyModels(), artifacts={"bundle": str(bundle)},
                code_paths=[str(PACKAGE_DIR)], pip_requirements=pip_requirements("scikit-learn"),
                input_example=example.drop(columns=[cfg.columns.target]) if example is not None else None,
                registered_model_name=cfg.registered_model)
        model_version = str(info.registered_model_version)
        mlflow.set_tags({"model_version": model_version, "job": "forecast"})
        tracking_seconds = time.perf_counter() - t1
        mlflow.log_metric("tracking_seconds", tracking_seconds)

    rows = results.drop(columns=["model"]).assign(
        run_id=run.info.run_id, model_name=cfg.registered_model, model_version=model_version,
        data_table_version=version, trained_at=pd.Timestamp(trained_at))
    rt.tables.append(TABLES["group_metrics"], rows)
    out = {"run_id": run.info.run_id, "model_name": cfg.registered_model, "model_version": model_version,
           **summary, "train_seconds": round(train_seconds, 2), "tracking_seconds": round(tracking_seconds, 2),
           "metrics_table": rt.tables.path(TABLES["group_metrics"])}
    for k, v in out.items():
        rt.context.set(k, v)
    return out
