"""score: the champion forecasts the latest rows of every group; groups without a model are reported.

Scoring is ``mapInPandas`` over the meta model: Arrow batches as they come from the window
(each group's rows together), each row routed to its group's booster through the LRU.
bench/many_models.py measures it against groupBy().applyInPandas() (a second shuffle, one call
per group) and mlflow's spark_udf (the same routing behind pyfunc's per-batch input handling) in
the same run; mapInPandas was the fastest of the three, see bench/README.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .model_names import full_model_name
from .runtime import TABLES, Runtime
from .tracking import check_reachable, require_champion


def latest_rows(sdf, keys: list[str], ts: str, periods: int):
    """The last ``periods`` distinct timestamps of every group."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rank = F.dense_rank().over(Window.partitionBy(*keys).orderBy(F.col(ts).desc()))
    return sdf.withColumn("_r", rank).where(F.col("_r") <= periods).drop("_r")


def run(rt: Runtime) -> dict:
    import mlflow
    from pyspark.sql import functions as F

    cfg = rt.settings.forecast
    keys, ts, target = list(cfg.columns.group_keys), cfg.columns.timestamp, cfg.columns.target
    check_reachable()
    name = full_model_name(rt.settings.tracking.registry, cfg.registered_model)
    version = require_champion(name)
    uri = f"models:/{name}/{version}"  # pinned: the alias may move while this job runs
    table = TABLES["forecast"]
    data_version = rt.tables.version(table)
    rt.say(f"scoring {table} v{data_version} with {name} v{version}")
    cores = rt.spark.sparkContext.defaultParallelism
    # One window partition per core: the scoring tasks are short and even, so each extra task's
    # fixed cost (~0.1-0.3 s locally) is pure overhead.
    rt.spark.conf.set("spark.sql.shuffle.partitions", str(cores))
    sdf = latest_rows(rt.tables.read_spark(rt.spark, table, data_version), keys, ts, cfg.score_periods)
    ref = model_ref(rt.spark, mlflow.artifacts.download_artifacts(uri))
    types = {f.name: f.dataType.simpleString() for f in sdf.schema.fields}
    schema = ", ".join([*(f"`{c}` {types[c]}" for c in [*keys, ts]), "prediction double", "actual double"])
    out = (sdf.select(*keys, ts, *cfg.columns.features, F.col(target).cast("double").alias("actual"))
           .mapInPandas(map_in_pandas_scorer(ref, [*keys, ts, "prediction", "actual"]), schema)
           .toPandas())
    out["has_model"] = out.prediction.notna()  # the meta model returns NaN for groups it has no model for
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


# ---------------------------------------------------------------- scorers (bench/many_models.py compares them)

SCORE_SCHEMA = "prediction double"
_MODELS: dict = {}


def model_ref(spark, local_dir: str) -> tuple[str, str]:
    """How the Python workers find a pyfunc model downloaded on the driver.

    Local mode shares the driver's disk: the path itself. On a cluster the executors do not see
    the driver's local disk, so the directory is shipped the way ``mlflow.pyfunc.spark_udf`` ships
    it (zipped, ``SparkContext.addFile``) and each worker extracts and loads it once.
    """
    if spark.sparkContext.master.startswith("local"):
        return "path", local_dir
    from mlflow.pyfunc.spark_model_cache import SparkModelCache

    return "archive", SparkModelCache.add_local_model(spark, local_dir)


def worker_models(ref: tuple[str, str] | str):
    """The meta model's GroupModels, loaded once per Python worker (Spark reuses the workers)."""
    kind, where = ("path", ref) if isinstance(ref, str) else ref
    if where not in _MODELS:
        if kind == "archive":
            from mlflow.pyfunc.spark_model_cache import SparkModelCache

            model = SparkModelCache.get_or_load(where)[0]
        else:
            import mlflow

            model = mlflow.pyfunc.load_model(where)
        _MODELS[where] = model.unwrap_python_model().models
    return _MODELS[where]


def map_in_pandas_scorer(ref, columns: list[str] = ("prediction",)):
    """mapInPandas: Arrow batches as they come (no shuffle), each row routed to its group's booster
    through the meta model's LRU. Yields ``columns``, taken from the prediction frame (keys,
    timestamp, prediction) or else from the input rows (e.g. the actual value)."""
    columns = list(columns)

    def predict(batches):
        models = worker_models(ref)
        for pdf in batches:
            out = models.predict(pdf)
            yield pd.DataFrame({c: (out[c] if c in out else pdf[c]).to_numpy() for c in columns})

    return predict


def apply_in_pandas_scorer(ref):
    """applyInPandas: one group per call (needs a shuffle by group). Measured slower: bench/README.md."""

    def predict(key, pdf):
        models = worker_models(ref)
        return pd.DataFrame({"prediction": models.predict_group(tuple(str(k) for k in key), pdf).astype(float)})

    return predict


def noop_scorer(batches):
    """The floor: the same rows through Python workers that compute nothing."""
    for pdf in batches:
        yield pd.DataFrame({"prediction": np.zeros(len(pdf))})
