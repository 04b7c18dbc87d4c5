"""score: the champion forecasts the next ``horizon`` periods of every group it has a model for.

Each group's model knows the last period it was trained on and the frequency; the future rows are
those periods (with the future values of the mapped features, from ``forecast.future_features``,
when the group's model uses features). Scoring is ``groupBy().applyInPandas()`` over the meta
model, one call per group (its model loaded through the LRU).

The predictions table keys on (group, target date, model version): a re-run of the same version
replaces its own rows. Groups without a model, and groups that cannot be forecast (no future
feature values), are reported with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError, WorkloadError
from .forecast.frequency import future_dates
from .forecast.meta_model import GroupModels, canonical
from .model_names import full_model_name
from .runtime import TABLES, Runtime
from .tracking import check_reachable, require_champion


def future_rows(models: GroupModels, future: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per group and future period (keys, timestamp, step, the features), and the groups
    that cannot be forecast -> why. ``future``: keys, timestamp (naive UTC) and feature columns."""
    spec = models.spec
    keys, ts, feats, freq, horizon = list(spec.keys), spec.timestamp, list(spec.features), spec.frequency, spec.horizon
    frames, cannot = [], {}
    lookup = None
    if future is not None and feats:
        lookup = {k if isinstance(k, tuple) else (k,): g for k, g in future.groupby(keys, sort=False)}
    for key in models.groups():
        info = models.group_info(key)
        last = pd.Timestamp(info["last_ts"])
        rows = pd.DataFrame({ts: future_dates(last, freq, horizon)})
        rows.insert(0, "step", np.arange(1, horizon + 1))
        for k, v in zip(keys, key):
            rows.insert(0, k, v)
        if feats:
            uses = info.get("model_type") == "xgboost"
            got = lookup.get(tuple(key)) if lookup is not None else None
            if got is not None:
                rows = rows.merge(got[[ts, *feats]].drop_duplicates(ts), on=ts, how="left")
            else:
                rows = rows.assign(**{f: np.nan for f in feats})
            if uses and rows[feats].isna().any().any():
                gap = rows[ts][rows[feats].isna().any(axis=1)].iloc[0]
                cannot["/".join(key)] = (f"its {info['model_type']} model needs future values of {', '.join(feats)}: "
                                         + ("no forecast.future_features source is configured" if future is None else
                                            f"none for {gap.date()} in the future features"))
                continue
            rows[feats] = rows[feats].fillna(0.0)  # a model without features ignores them
        frames.append(rows)
    cols = [*keys, "step", ts, *feats]
    return (pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)), cannot


def read_future(rt: Runtime, keys: list[str]) -> pd.DataFrame | None:
    """The future feature values: ``forecast.future_features``, or the synthetic generator's own
    calendar when the history is synthetic; None when there is none (and no features are mapped)."""
    cfg = rt.settings.forecast
    col = cfg.columns
    if not col.features:
        return None
    src = cfg.future_features
    if src is None and cfg.source.format == "synthetic":
        from .data.synthetic import future_features

        size = cfg.synthetic
        pdf = future_features(size.stores, size.items, size.days, size.seed, periods=366)
    elif src is None:
        return None
    elif src.format in ("csv", "parquet"):
        path = src.path or ""
        if "://" not in path and not path.startswith("/Volumes") and not Path(path).exists():
            raise DataError(f"future features {path}", [f"file {path} does not exist (forecast.future_features.path)"])
        reader = rt.spark.read.option("header", True).option("inferSchema", True)
        sdf = reader.csv(path) if src.format == "csv" else rt.spark.read.parquet(path)
        missing = [c for c in [*keys, col.timestamp, *col.features] if c not in sdf.columns]
        if missing:
            raise DataError(f"future features {path}", [f"column {c!r} is missing; columns present: "
                                                        f"{', '.join(sdf.columns)}" for c in missing])
        pdf = sdf.select(*keys, col.timestamp, *col.features).toPandas()
    else:
        raise DataError("forecast.future_features", [f"format {src.format!r} is not supported here: use csv or parquet"])
    out = pdf[[*keys, col.timestamp, *col.features]].copy()
    out[keys] = out[keys].astype(str)
    out[col.timestamp] = pd.to_datetime(out[col.timestamp], utc=True).dt.tz_localize(None)
    for f in col.features:
        out[f] = pd.to_numeric(out[f], errors="coerce")
    return out


def run(rt: Runtime) -> dict:
    import mlflow
    from pyspark.sql import functions as F

    cfg = rt.settings.forecast
    keys, ts = list(cfg.columns.group_keys), cfg.columns.timestamp
    check_reachable()
    name = full_model_name(rt.settings.tracking.registry, cfg.registered_model)
    version = require_champion(name)
    uri = f"models:/{name}/{version}"  # pinned: the alias may move while this job runs
    table = TABLES["forecast"]
    data_version = rt.tables.version(table)
    local = mlflow.artifacts.download_artifacts(uri)
    models: GroupModels = worker_models(("path", local))
    if not models.spec.forecasts_future:
        raise WorkloadError(f"{name} v{version} was trained before forecasts knew their history "
                            "(no frequency in its bundle): train a new version")
    rt.say(f"forecasting {models.spec.horizon} {models.spec.frequency} periods per group with {name} v{version}")
    future, cannot = future_rows(models, read_future(rt, keys))
    # Groups in the data without a model (skipped or failed in training), and groups with newer data
    # than their model was trained on (the forecast starts after the model's history: retrain).
    hist = rt.tables.read_spark(rt.spark, table, data_version).groupBy(*keys).agg(F.max(ts).alias("_last")).toPandas()
    hist[keys] = hist[keys].astype(str)
    known = {canonical(k) for k in models.groups()}
    missing = [r for r in hist[keys].itertuples(index=False) if canonical(tuple(r)) not in known]
    stale = []
    for r in hist.to_dict("records"):
        key = tuple(r[k] for k in keys)
        if canonical(key) in known and pd.Timestamp(r["_last"]).tz_localize(None) > pd.Timestamp(models.group_info(key)["last_ts"]):
            stale.append("/".join(key))
    scored = pd.DataFrame()
    levels = list(models.spec.levels)
    bands = [f"{side}_{lv}" for lv in levels for side in ("lo", "hi")]
    if len(future):
        cores = rt.spark.sparkContext.defaultParallelism
        ref = model_ref(rt.spark, local)
        schema = ", ".join([*(f"`{k}` string" for k in keys), "step int", f"`{ts}` timestamp", "prediction double",
                            *(f"{b} double" for b in bands), "error string"])
        # One call per group: a recursive model with features needs all of its periods at once (an
        # Arrow batch of mapInPandas may cut a group in two).
        sdf = rt.spark.createDataFrame(future).repartition(cores, *keys)
        out = (sdf.groupBy(*keys).applyInPandas(group_scorer(ref, [*keys, "step", ts, "prediction", *bands, "error"]),
                                                schema).toPandas())
        for r in out[out.error != ""].drop_duplicates(keys).to_dict("records"):
            cannot["/".join(str(r[k]) for k in keys)] = r["error"]
        out = out[out.error == ""].drop(columns=["error"])
        types = {canonical(k): models.group_info(k).get("model_type", "") for k in models.groups()}
        trained = {canonical(k): models.group_info(k).get("last_ts", "") for k in models.groups()}
        ck = [canonical(tuple(r)) for r in out[keys].itertuples(index=False)]
        scored = out.assign(model_type=[types[c] for c in ck],
                            trained_through=pd.to_datetime([trained[c] for c in ck], utc=True),
                            model_name=name, model_version=version, data_table_version=data_version,
                            scored_at=pd.Timestamp.now(tz="UTC"))
        scored[ts] = pd.to_datetime(scored[ts]).dt.tz_localize("UTC")
    if len(scored):
        rt.tables.replace_where(TABLES["predictions"], scored, {"model_version": version})
    result = {"model_name": name, "model_version": version, "rows_scored": len(scored),
              "groups_scored": int(scored[keys].drop_duplicates().shape[0]) if len(scored) else 0,
              "horizon": int(models.spec.horizon), "frequency": models.spec.frequency,
              "forecast_from": str(scored[ts].min().date()) if len(scored) else "",
              "forecast_to": str(scored[ts].max().date()) if len(scored) else "",
              "groups_without_model": ["/".join(r) for r in missing],
              "groups_not_forecast": dict(sorted(cannot.items())), "groups_with_newer_data": stale,
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
    """mapInPandas: Arrow batches as they come (no shuffle), each row routed to its group's model
    through the meta model's LRU. Yields ``columns``, taken from the prediction frame (keys,
    timestamp, prediction, intervals, error) or else from the input rows (e.g. the step)."""
    columns = list(columns)

    def predict(batches):
        models = worker_models(ref)
        for pdf in batches:
            out = models.predict(pdf)
            yield pd.DataFrame({c: (out[c] if c in out else pdf[c]).to_numpy() for c in columns})

    return predict


def group_scorer(ref, columns: list[str]):
    """applyInPandas: all rows of one group per call; yields ``columns`` like map_in_pandas_scorer."""
    columns = list(columns)

    def predict(pdf):
        out = worker_models(ref).predict(pdf)
        return pd.DataFrame({c: (out[c] if c in out else pdf[c]).to_numpy() for c in columns})

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
