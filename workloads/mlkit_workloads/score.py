"""score: the champion forecasts the next ``horizon`` periods of every group it has a model for.

Each group's model knows the last period it was trained on and the frequency; the future rows are
those periods (with the future values of the mapped features, from ``forecast.future_features``,
when the group's model uses features). Scoring is ``groupBy(bucket).applyInPandas()`` over the meta
model: the groups are dealt into one bucket per task on the driver (``buckets.dealt``), each call
routes its bucket through one ``GroupModels.predict`` (each Python worker opens the bundle once;
each group's model read through the LRU); a group that cannot be forecast gets its reason, never
its neighbours.

The predictions table keys on (group, target date, model version): a re-run of the same version
replaces its own rows. Groups without a model, and groups that cannot be forecast (no future
feature values), are reported with the reason.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .buckets import BUCKET, dealt, scoring_tasks, spark_conf
from .errors import DataError, WorkloadError
from .forecast.frequency import future_dates
from .forecast.meta_model import GroupModels, NotABundle, bundle_dir, canonical
from .model_names import full_model_name
from .runtime import TABLES, Runtime
from .tracking import check_reachable, require_champion


# A scoring task gets at least this many groups (more tasks per core only above it): a baseline
# group is ~10-20 ms of predict here, so 1,000 of them are ~10-20 s, against ~0.3-0.5 s per task.
MIN_GROUPS_PER_TASK = 1000


def future_rows(models: GroupModels, future: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per group and future period (keys, timestamp, step, the features), and the groups
    that cannot be forecast -> why. ``future``: keys, timestamp (naive UTC) and feature columns.
    Built for every group at once (one merge), not group by group: 10,000 groups cost ~50 ms
    each one by one, on the driver, before any scoring starts."""
    spec = models.spec
    keys, ts, feats, freq, horizon = list(spec.keys), spec.timestamp, list(spec.features), spec.frequency, spec.horizon
    cols = [*keys, "step", ts, *feats]
    groups = models.groups()
    if not groups:
        return pd.DataFrame(columns=cols), {}
    infos = [models.group_info(k) for k in groups]
    dates: dict[str, pd.DatetimeIndex] = {}  # most groups end on the same period
    for info in infos:
        if info["last_ts"] not in dates:
            dates[info["last_ts"]] = future_dates(pd.Timestamp(info["last_ts"]), freq, horizon)
    rows = pd.DataFrame({**{k: np.repeat([g[i] for g in groups], horizon) for i, k in enumerate(keys)},
                         "step": np.tile(np.arange(1, horizon + 1), len(groups)),
                         ts: np.concatenate([dates[i["last_ts"]].to_numpy() for i in infos]).astype("datetime64[ns]")})
    cannot: dict[str, str] = {}
    if feats:
        if future is not None:
            got = future[[*keys, ts, *feats]].drop_duplicates([*keys, ts])
            got = got.astype({**{k: str for k in keys}, ts: "datetime64[ns]"})
            rows = rows.merge(got, on=[*keys, ts], how="left")
        else:
            rows = rows.assign(**{f: np.nan for f in feats})
        uses = np.repeat([i.get("model_type") == "xgboost" for i in infos], horizon)
        gaps = rows[uses & rows[feats].isna().any(axis=1).to_numpy()]
        for key, first in gaps.groupby(keys, sort=False)[ts].first().items():
            key = key if isinstance(key, tuple) else (key,)
            kind = models.group_info(key)["model_type"]
            cannot["/".join(key)] = (f"its {kind} model needs future values of {', '.join(feats)}: "
                                     + ("no forecast.future_features source is configured" if future is None else
                                        f"none for {first.date()} in the future features"))
        if cannot:
            bad = set(cannot)
            rows = rows[["/".join(r) not in bad for r in rows[keys].itertuples(index=False)]]
        rows[feats] = rows[feats].fillna(0.0)  # a model without features ignores them
    return rows[cols].reset_index(drop=True), cannot


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
    timings: dict[str, float] = {}
    t = time.perf_counter()
    local = mlflow.artifacts.download_artifacts(uri)
    models = GroupModels(model_bundle(local))
    timings["download_load"] = time.perf_counter() - t
    if not models.spec.forecasts_future:
        raise WorkloadError(f"{name} v{version} was trained before forecasts knew their history "
                            "(no frequency in its bundle): train a new version")
    rt.say(f"forecasting {models.spec.horizon} {models.spec.frequency} periods per group with {name} v{version}")
    t = time.perf_counter()
    future, cannot = future_rows(models, read_future(rt, keys))
    timings["future_rows"] = time.perf_counter() - t
    t = time.perf_counter()
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
    timings["history_check"] = time.perf_counter() - t
    scored, tasks = pd.DataFrame(), 0
    levels = list(models.spec.levels)
    bands = [f"{side}_{lv}" for lv in levels for side in ("lo", "hi")]
    if len(future):
        t = time.perf_counter()
        cores = rt.spark.sparkContext.defaultParallelism
        ref = model_ref(rt.spark, local)
        cols = [*keys, "step", ts, "prediction", *bands, "error"]
        schema = ", ".join([*(f"`{k}` string" for k in keys), "step int", f"`{ts}` timestamp", "prediction double",
                            *(f"{b} double" for b in bands), "error string"])
        # Whole groups per call: a recursive model with features needs all of its periods at once
        # (an Arrow batch of mapInPandas may cut a group in two). The rows are few (groups x
        # horizon) and already on the driver: the buckets are dealt here (one per task, equal in
        # groups); the work is the models, so few tasks (``scoring_tasks``).
        tasks = scoring_tasks(int(future[keys].drop_duplicates().shape[0]), cores, MIN_GROUPS_PER_TASK)
        with spark_conf(rt.spark, **{"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": str(tasks),
                                "spark.sql.execution.arrow.maxRecordsPerBatch": str(len(future) + 1)}):
            out = dealt(rt.spark, future, keys, tasks).groupBy(BUCKET).applyInPandas(bucket_scorer(ref, keys, cols), schema).toPandas()
        timings["predict_stage"] = time.perf_counter() - t
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
    t = time.perf_counter()
    if len(scored):
        rt.tables.replace_where(TABLES["predictions"], scored, {"model_version": version})
    timings["write"] = time.perf_counter() - t
    result = {"model_name": name, "model_version": version, "rows_scored": len(scored),
              "groups_scored": int(scored[keys].drop_duplicates().shape[0]) if len(scored) else 0,
              "horizon": int(models.spec.horizon), "frequency": models.spec.frequency,
              "forecast_from": str(scored[ts].min().date()) if len(scored) else "",
              "forecast_to": str(scored[ts].max().date()) if len(scored) else "",
              "groups_without_model": ["/".join(r) for r in missing],
              "groups_not_forecast": dict(sorted(cannot.items())), "groups_with_newer_data": stale,
              "predictions_table": rt.tables.path(TABLES["predictions"]), "data_table_version": data_version,
              "timings": {k: round(v, 3) for k, v in timings.items()}, "predict_tasks": tasks}
    for k, v in result.items():
        rt.context.set(k, v)
    return result


# ---------------------------------------------------------------- the scorer (one call per bucket)

_MODELS: dict = {}


def model_bundle(local_dir: str | Path) -> Path:
    """The bundle directory inside a downloaded meta model. The tasks open it with GroupModels
    directly, which is what ``ManyModels.load_context`` does, without loading the pyfunc (0.7 s per
    process at load 5, ~4.5 s at load 20, paid by every Python worker before its first group)."""
    try:
        return bundle_dir(Path(local_dir))
    except (NotABundle, OSError) as e:
        raise WorkloadError(f"the scored model: {e}") from None


def model_ref(spark, local_dir: str) -> tuple[str, str]:
    """How the Python workers find a meta model downloaded on the driver.

    Local mode shares the driver's disk: the bundle directory itself, opened with GroupModels. On a
    cluster the executors do not see the driver's local disk, so the model directory is shipped the
    way ``mlflow.pyfunc.spark_udf`` ships it (zipped, ``SparkContext.addFile``) and each worker
    extracts and loads it once.
    """
    if spark.sparkContext.master.startswith("local"):
        return "bundle", str(model_bundle(local_dir))
    from mlflow.pyfunc.spark_model_cache import SparkModelCache

    return "archive", SparkModelCache.add_local_model(spark, local_dir)


def worker_models(ref: tuple[str, str]) -> GroupModels:
    """The meta model's GroupModels, loaded once per Python worker (Spark reuses the workers)."""
    kind, where = ref
    if where not in _MODELS:
        if kind == "archive":
            from mlflow.pyfunc.spark_model_cache import SparkModelCache

            _MODELS[where] = SparkModelCache.get_or_load(where)[0].unwrap_python_model().models
        elif kind == "bundle":
            _MODELS[where] = GroupModels(where)
        else:
            raise ValueError(f"unknown model reference {ref!r}")
    return _MODELS[where]


def score_groups(models: GroupModels, pdf: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Rows of several groups -> ``columns`` (from the prediction frame: keys, timestamp, prediction,
    intervals, error; else from the input rows, e.g. the step). The meta model routes the rows of all
    groups in one call (a group it cannot forecast already gets its reason in ``error``); only if that
    call raises (e.g. a model that cannot be read) are the groups scored one at a time, so that the
    group whose model breaks gets the reason on its rows and its neighbours are scored."""
    try:
        return _columns(models.predict(pdf), pdf, columns)
    except Exception:  # noqa: BLE001 - find the group that broke it, score the others
        pass
    outs = []
    for _, rows in pdf.groupby(keys, sort=False):
        try:
            out = models.predict(rows)
        except Exception as e:  # noqa: BLE001 - this group is not forecast, the others are
            name = "/".join(str(rows[k].iloc[0]) for k in keys)
            out = rows[keys].assign(prediction=np.nan, error=f"group {name}: {type(e).__name__}: {e}"[:500])
        outs.append(_columns(out, rows, columns))
    return pd.concat(outs, ignore_index=True) if outs else pd.DataFrame(columns=columns)


def _columns(out: pd.DataFrame, rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: (out[c] if c in out else rows[c]).to_numpy() for c in columns})


def bucket_scorer(ref, keys: list[str], columns: list[str]):
    """applyInPandas over buckets: every group of the bucket, see ``score_groups``."""
    columns = list(columns)

    def predict(pdf):
        return score_groups(worker_models(ref), pdf.drop(columns=[BUCKET]), keys, columns)

    return predict
