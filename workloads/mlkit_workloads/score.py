"""score: the champion forecasts the latest rows of every group; groups without a model are reported.

Scoring runs through groupBy().applyInPandas() with the meta model, like training: each task
loads one group's booster once (bench/many_models.py measures it against mlflow's spark_udf,
which sends mixed-group batches through the whole meta model; see bench/README.md).
"""

from __future__ import annotations

import pandas as pd

from .runtime import TABLES, Runtime
from .tracking import check_reachable, require_champion

_LOADED: dict[str, object] = {}  # per Python worker: load each model once, not once per group


def _load(uri: str, tracking_uri: str):
    if uri not in _LOADED:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        _LOADED[uri] = mlflow.pyfunc.load_model(uri).unwrap_python_model().models
    return _LOADED[uri]


def score_schema(keys: list[str], ts: str) -> str:
    return ", ".join([f"`{k}` string" for k in keys] + [f"`{ts}` timestamp", "prediction double", "actual double",
                                                          "has_model boolean"])


def make_udf(uri: str, tracking_uri: str, keys: list[str], ts: str, target: str):
    def predict(key: tuple, pdf: pd.DataFrame) -> pd.DataFrame:
        models = _load(uri, tracking_uri)
        key = tuple(str(k) for k in key)
        out = pdf[[*keys, ts]].copy()
        out["actual"] = pdf[target].astype(float) if target in pdf else float("nan")
        try:
            models.group_info(key)
        except KeyError:
            return out.assign(prediction=float("nan"), has_model=False)
        return out.assign(prediction=models.predict_group(key, pdf).astype(float), has_model=True)

    return predict


def latest_rows(sdf, keys: list[str], ts: str, periods: int):
    """The last ``periods`` distinct timestamps of every group."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rank = F.dense_rank().over(Window.partitionBy(*keys).orderBy(F.col(ts).desc()))
    return sdf.withColumn("_r", rank).where(F.col("_r") <= periods).drop("_r")


def run(rt: Runtime) -> dict:
    import mlflow

    cfg = rt.settings.forecast
    keys, ts, target = list(cfg.columns.group_keys), cfg.columns.timestamp, cfg.columns.target
    check_reachable()
    name = cfg.registered_model
    version = require_champion(name)
    uri = f"models:/{name}/{version}"  # pinned: the alias may move while this job runs
    if rt.spark.sparkContext.master.startswith("local"):
        uri = mlflow.artifacts.download_artifacts(uri)  # one download, shared by the local workers
    table = TABLES["forecast"]
    data_version = rt.tables.version(table)
    sdf = latest_rows(rt.tables.read_spark(rt.spark, table, data_version), keys, ts, cfg.score_periods)
    cols = [*keys, ts, target, *cfg.columns.features]
    rt.say(f"scoring {table} v{data_version} with {name} v{version}")
    out = (sdf.select(*cols).groupBy(*keys)
           .applyInPandas(make_udf(uri, mlflow.get_tracking_uri(), keys, ts, target), score_schema(keys, ts))
           .toPandas())
    missing = out[~out.has_model][keys].drop_duplicates()
    scored = out[out.has_model].drop(columns=["has_model"]).assign(
        model_name=name, model_version=version, data_table_version=data_version,
        scored_at=pd.Timestamp.now(tz="UTC"))
    if len(scored):
        rt.tables.append(TABLES["predictions"], scored)
    result = {"model_name": name, "model_version": version, "rows_scored": len(scored),
              "groups_scored": int(scored[keys].drop_duplicates().shape[0]) if len(scored) else 0,
              "groups_without_model": ["/".join(r) for r in missing.astype(str).itertuples(index=False)],
              "predictions_table": rt.tables.path(TABLES["predictions"]), "data_table_version": data_version}
    for k, v in result.items():
        rt.context.set(k, v)
    return result
