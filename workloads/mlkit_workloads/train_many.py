"""train_many: the best of several forecasters per group, chosen by backtest, with
groupBy(bucket).applyInPandas() (each call loops over the groups of its bucket, ``buckets``); one
MLflow run, one bundle.

The run's frequency is the settings' or inferred from the table's distinct timestamps (and said);
season, horizon and backtest sizes follow from it (``forecast.frequency.plan``). Spark and MLflow
stay at the edges: the per-group work is ``forecast.train.train_group`` on a pandas frame. A run
where no group trained fails with every group's reason and registers nothing. Models travel back to the driver as zstd-compressed bytes in the result rows
(compressed on the workers, in parallel: ~4x fewer bytes through the collect) and are logged as
one meta model whose boosters sit in one packed file (per-group log_model calls, or one upload per
group file, would cost more than the training itself). The signature is built from the table's
schema: an input example would cost an extra Spark job and a model load + predict at log time.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .buckets import BUCKET, MAX_ROWS_PER_CALL, bucketed, layout, spark_conf
from .errors import WorkloadError
from .forecast.bundle_spec import BundleSpec
from .forecast.frequency import Plan, infer_frequency, plan
from .forecast.meta_model import BUNDLE_ARTIFACT, CODEC, FORECASTER, ManyModels, compress, write_bundle
from .forecast.train import SEARCH_FIELDS, GroupResult, metric_names, train_group, utc_now
from .model_names import full_model_name
from .runtime import TABLES, Runtime, code_version, experiment
from .tracking import check_reachable, pip_requirements, record_training, reuse_training, training_tags

PACKAGE_DIR = Path(__file__).resolve().parent
# What a loaded bundle needs besides the tracking defaults: the pickled forecasters' libraries.
MODEL_LIBRARIES = ("scikit-learn", "statsforecast", "mlforecast", "utilsforecast", "coreforecast", "cloudpickle")


# What a group's result row holds besides its keys and its model, with Spark-ish types. The UDF
# sends these as ONE JSON string column (plus keys + the model bytes): measured per group in the
# Python worker, pandas -> Arrow of a 1-row frame costs ~2.1 ms with 19 columns vs ~0.7 ms with 4,
# paid 1000 times on the same cores the fits use. The driver expands it back (``expand``).
def result_fields(levels: list[int]) -> tuple[tuple[str, str], ...]:
    return (("status", "string"), ("reason", "string"), ("n_rows", "long"), ("n_periods", "long"),
            ("n_filled", "long"), ("first_ts", "string"), ("last_ts", "string"), ("model_type", "string"),
            *((m, "double") for m in metric_names(levels)),
            ("candidates", "string"), ("backtest", "string"), ("fit_seconds", "double"), *SEARCH_FIELDS,
            ("model_bytes", "long"))


_DTYPES = {"string": object, "long": "int64", "double": "float64"}


def result_schema(keys: list[str]) -> str:
    """What applyInPandas returns per group: keys, the result fields as JSON, the compressed model."""
    return ", ".join([*(f"`{k}` string" for k in keys), "result string", "model binary"])


def make_udf(cfg, keys: list[str], run_plan: Plan):
    """The per-group function: ``fit(key, rows) -> one result row`` (keys, result JSON, model bytes).
    Never raises: whatever breaks in one group (train_group already turns its own problems into a
    status; this also covers pickling and compressing the model) is that group's ``failed`` row."""
    import cloudpickle

    names = metric_names(list(cfg.levels))

    def fit(key: tuple, pdf: pd.DataFrame) -> pd.DataFrame:
        seed = zlib.crc32("|".join(map(str, key)).encode())  # stable across processes
        try:
            result = train_group(pdf, cfg, run_plan, seed=seed)
            model, result.model = result.model, None  # row() deep-copies what it holds: not the model
            row = result.row(names)
            row.pop("model")
            raw = cloudpickle.dumps(model) if model is not None else None
            row["model_bytes"] = len(raw) if raw else 0
            packed = compress(raw) if raw else None
        except Exception as e:  # noqa: BLE001 - this group fails, never its neighbours
            row = GroupResult("failed", f"{type(e).__name__}: {e}"[:500], n_rows=len(pdf)).row(names)
            row.pop("model")
            row["model_bytes"], packed = 0, None
        return pd.DataFrame({**{k: [str(v)] for k, v in zip(keys, key)}, "result": [json.dumps(row)],
                             "model": [packed]})

    return fit


def make_bucket_udf(cfg, keys: list[str], run_plan: Plan):
    """The function applyInPandas runs once per bucket: the per-group ``fit`` over each of its groups
    in key order, each on exactly the rows it would get alone (own split, search, status)."""
    fit = make_udf(cfg, keys, run_plan)

    def fit_bucket(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.drop(columns=[BUCKET])
        out = [fit(key if isinstance(key, tuple) else (key,), rows.reset_index(drop=True))
               for key, rows in pdf.groupby(keys, sort=True)]
        return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[*keys, "result", "model"])

    return fit_bucket


def expand(raw: pd.DataFrame, keys: list[str], levels: list[int]) -> pd.DataFrame:
    """The collected UDF rows -> one row per group: keys, every result_fields column, model."""
    fields = result_fields(levels)
    names = [n for n, _ in fields]
    info = pd.DataFrame.from_records([json.loads(s) for s in raw["result"]], columns=names)
    info = info.astype({n: _DTYPES[t] for n, t in fields})
    out = pd.concat([raw[keys].reset_index(drop=True), info], axis=1)
    out.insert(out.columns.get_loc("model_bytes"), "model", raw["model"].reset_index(drop=True))
    return out


def run_plan(spark, sdf, cfg) -> tuple[Plan, str]:
    """The run's frequency and sizes, and how the frequency was found (for the log and the summary).
    A frequency that does not fit the settings is a WorkloadError naming the setting."""
    how = "from the settings"
    freq = cfg.frequency
    if freq is None:
        stamps = sdf.select(cfg.columns.timestamp).distinct().toPandas()[cfg.columns.timestamp]
        try:
            freq = infer_frequency(stamps)
        except ValueError as e:
            raise WorkloadError(f"forecast.frequency: {e}") from None
        how = f"inferred from {len(stamps)} distinct timestamps"
    try:
        return plan(cfg, freq), how
    except ValueError as e:
        raise WorkloadError(f"forecast settings for {freq} data ({how}): {e}") from None


def train_groups(spark, sdf, cfg, the_plan: Plan, per_group: bool = False, layout_out: dict | None = None) -> pd.DataFrame:
    """Spark edge: one core per model, several groups per UDF call (``per_group``: one call per group,
    the reference path the batching is tested against). Returns one row per group, in key order;
    ``layout_out`` gets the tasks and buckets chosen."""
    keys = list(cfg.columns.group_keys)
    cores = spark.sparkContext.defaultParallelism
    cols = [*keys, cfg.columns.timestamp, cfg.columns.target, *cfg.columns.features]
    # The rows from the files' footers (Parquet/Delta count without reading a column): the groups
    # per key would need an aggregate over the table (~2 s of 30 at 1.5M rows here) and only capped
    # the tasks and buckets at the groups, where a task or bucket without a group costs nothing.
    rows = sdf.count()
    tasks, buckets = layout(rows, max(rows, 1), cores)
    # The table's read + the shuffle's map side on every core, not one: Spark packs files into read
    # splits of max(openCostInBytes = 4 MB, bytes / cores), so a table of a few MB (1.5M rows here)
    # was ONE split, read and shuffled on one core while the other waited. With a small open cost
    # the split is bytes / cores (the tables are written in row groups of ROW_GROUP_ROWS, so a
    # split boundary has row groups on both sides); big tables still get 128 MB splits.
    # AQE off: it would coalesce the few, heavy partitions into fewer tasks than cores.
    confs = {"spark.sql.files.openCostInBytes": str(64 * 1024), "spark.sql.adaptive.enabled": "false",
             "spark.sql.shuffle.partitions": str(tasks),
             "spark.sql.execution.arrow.maxRecordsPerBatch": str(MAX_ROWS_PER_CALL)}
    with spark_conf(spark, **confs):
        if per_group:
            # Range-partitioned by the keys: each task gets about the same number of rows.
            out = (sdf.select(*cols).repartitionByRange(tasks, *keys).groupBy(*keys)
                   .applyInPandas(make_udf(cfg, keys, the_plan), result_schema(keys)))
        else:
            out = (bucketed(sdf.select(*cols), keys, tasks, buckets).groupBy(BUCKET)
                   .applyInPandas(make_bucket_udf(cfg, keys, the_plan), result_schema(keys)))
        raw = out.toPandas()
    if layout_out is not None:
        layout_out.update(tasks=tasks, buckets=buckets, groups=len(raw), rows=rows)
    return expand(raw, keys, list(cfg.levels)).sort_values(keys, kind="stable").reset_index(drop=True)


def summarize(results: pd.DataFrame) -> dict[str, float]:
    ok = results[results.status == "ok"]
    out = {"groups": len(results), "groups_ok": len(ok), "groups_skipped": int((results.status == "skipped").sum()),
           "groups_failed": int((results.status == "failed").sum()),
           "share_ok": len(ok) / len(results) if len(results) else 0.0}
    if len(ok):
        out["share_beating_baseline"] = float((ok.model_type != "seasonal_naive").mean())
    searched = results[results.search_trials > 0]
    if len(searched):  # the XGBoost candidate's per-group search
        out["search_seconds_total"] = float(searched.search_seconds.sum())
        out["median_search_best_iteration"] = float(searched.search_best_iteration.median())
    for m in ("mae", "rmse", "wape", "mase", "baseline_wape", "baseline_mase"):
        vals = ok[m].dropna()
        if len(vals):
            out[f"median_{m}"] = float(vals.median())
            out[f"p90_{m}"] = float(np.percentile(vals, 90))
    return out


def no_group_trained(results: pd.DataFrame, keys: list[str]) -> str:
    """The error of a run where no group trained: every group's reason (the first 20), counted by reason."""
    lines = [f"{'/'.join(str(r[k]) for k in keys)}: {r['status']}: {r['reason']}" for r in results.head(20).to_dict("records")]
    more = f"\n  ... and {len(results) - 20} more groups" if len(results) > 20 else ""
    return (f"no group trained ({len(results)} groups), so no model version was registered:\n  "
            + "\n  ".join(lines) + more)


def log_bundle(results: pd.DataFrame, spec: BundleSpec, sig, registered_model: str, timings: dict):
    """Write the ok groups' models as one packed bundle and log + register it as one model."""
    import mlflow

    keys, trained_at, run_id = list(spec.keys), spec.trained_at, spec.run_id
    ok = results[results.status == "ok"]
    if ok.empty:  # never register a version without a single group model
        raise WorkloadError(no_group_trained(results, keys))
    names = metric_names(list(spec.levels))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        bundle = Path(tmp) / "bundle"
        write_bundle(bundle, spec, (
            (tuple(r[k] for k in keys), r["model"],
             {"status": "ok", "kind": FORECASTER, "model_type": r["model_type"], "trained_at": trained_at,
              "run_id": run_id, "bytes": int(r["model_bytes"]), "first_ts": r["first_ts"], "last_ts": r["last_ts"],
              "metrics": {m: float(r[m]) for m in names}})
            for r in ok.to_dict("records")), packed=True, codec=CODEC)
        timings["bundle_write"] = time.perf_counter() - t
        t = time.perf_counter()
        with warnings.catch_warnings():  # deliberate: the signature comes from the schema (see top)
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=ManyModels(), artifacts={BUNDLE_ARTIFACT: str(bundle)},
                code_paths=[str(PACKAGE_DIR)], pip_requirements=pip_requirements(*MODEL_LIBRARIES),
                signature=sig, registered_model_name=registered_model)
        timings["log_model_register"] = time.perf_counter() - t
    return info


_MLFLOW_TYPES = {"string": "string", "timestamp": "datetime", "timestamp_ntz": "datetime", "date": "datetime",
                 "int": "integer", "bigint": "long", "smallint": "integer", "tinyint": "integer",
                 "double": "double", "float": "float", "boolean": "boolean"}


def signature(schema, spec: BundleSpec):
    """Model signature from the Spark schema of the training table (no input example needed)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    types = {f.name: _MLFLOW_TYPES.get(f.dataType.simpleString(), "double") for f in schema.fields}
    ins = [*spec.keys, spec.timestamp, *spec.features]
    bands = [ColSpec("double", b) for b in spec.bands]
    outs = [ColSpec("string", k) for k in spec.keys] + [ColSpec("datetime", spec.timestamp),
                                                           ColSpec("double", "prediction"), *bands,
                                                           ColSpec("string", "error")]
    return ModelSignature(inputs=Schema([ColSpec(types[c], c) for c in ins]), outputs=Schema(outs))


def run(rt: Runtime) -> dict:
    import mlflow

    cfg = rt.settings.forecast
    keys = list(cfg.columns.group_keys)
    table, version = rt.context.get("ingest", "table"), int(rt.context.get("ingest", "table_version"))
    check_reachable()
    model_name = full_model_name(rt.settings.tracking.registry, cfg.registered_model)
    trained_on = training_tags(cfg, rt.tables.path(table), version)
    skipped = reuse_training(rt, model_name, trained_on)
    if skipped is not None:
        return _as_trained_before(rt, skipped, keys)
    experiment(rt, "forecast")
    sdf = rt.tables.read_spark(rt.spark, table, version)
    the_plan, how = run_plan(rt.spark, sdf, cfg)
    rt.say(f"frequency {the_plan.freq} ({the_plan.family}, {how}): season {the_plan.season_length}, horizon "
           f"{the_plan.horizon}, {the_plan.windows} backtest windows; candidates {', '.join(cfg.models)} + seasonal naive")
    rt.say(f"training the best model per group of {table} v{version}")
    t0 = time.perf_counter()
    spread: dict = {}
    results = train_groups(rt.spark, sdf, cfg, the_plan, layout_out=spread)
    train_seconds = time.perf_counter() - t0
    trained_at = utc_now()
    summary = summarize(results)

    timings: dict[str, float] = {}
    model_version = ""
    with mlflow.start_run(run_name=f"train_many {rt.env}") as run:
        t1 = time.perf_counter()
        mlflow.log_params({"data_table": table, "data_table_version": version, "data_path": rt.tables.path(table),
                           "code_version": code_version(), "env": rt.env, "max_rounds": cfg.search.max_rounds,
                           "n_trials": cfg.search.n_trials, "early_stopping_rounds": cfg.search.early_stopping_rounds,
                           "search_timeout_seconds": cfg.search.timeout_seconds,
                           "group_keys": ",".join(keys), "models": ",".join(cfg.models),
                           "frequency_source": how, **the_plan.as_dict()})
        mlflow.log_metrics({**summary, "train_seconds": train_seconds})
        mlflow.log_table(results.drop(columns=["model", "backtest"]), "group_metrics.json")
        timings["params_metrics_table"] = time.perf_counter() - t1
        rows = results.drop(columns=["model"]).assign(
            run_id=run.info.run_id, model_name=model_name, model_version="",
            data_table_version=version, trained_at=pd.Timestamp(trained_at), frequency=the_plan.freq)
        if summary["groups_ok"] == 0:  # the reasons stay in the metrics table, nothing is registered
            rt.tables.replace_where(TABLES["group_metrics"], rows, {"run_id": run.info.run_id})
            raise WorkloadError(no_group_trained(results, keys))
        spec = BundleSpec.from_dict({
            "keys": keys, "timestamp": cfg.columns.timestamp, "features": list(cfg.columns.features),
            "target": cfg.columns.target, "lru_max_models": cfg.lru_max_models, "lru_max_bytes": cfg.lru_max_bytes,
            "run_id": run.info.run_id, "trained_at": trained_at.isoformat(), "levels": list(cfg.levels),
            **the_plan.as_dict()})
        info = log_bundle(results, spec, signature(sdf.schema, spec), model_name, timings)
        model_version = str(info.registered_model_version)
        mlflow.set_tags({"model_version": model_version, "job": "forecast"})
        tracking_seconds = time.perf_counter() - t1
        mlflow.log_metric("tracking_seconds", tracking_seconds)

    record_training(model_name, model_version, run.info.run_id, trained_on)  # last: a run stopped before it trains again
    t2 = time.perf_counter()
    # Keyed on the run: a retried task replaces its own rows instead of adding a second set.
    rt.tables.replace_where(TABLES["group_metrics"], rows.assign(model_version=model_version),
                            {"run_id": run.info.run_id})
    timings["metrics_table"] = time.perf_counter() - t2
    out = {"run_id": run.info.run_id, "model_name": model_name, "model_version": model_version,
           **summary, **the_plan.as_dict(), "frequency_source": how,
           "columns": {"group_keys": keys, "timestamp": cfg.columns.timestamp, "target": cfg.columns.target},
           "train_seconds": round(train_seconds, 2), "tracking_seconds": round(tracking_seconds, 2),
           "metrics_table": rt.tables.path(TABLES["group_metrics"]),
           "timings": {k: round(v, 3) for k, v in timings.items()}, "layout": spread}
    for k, v in out.items():
        rt.context.set(k, v)
    return out


def _as_trained_before(rt: Runtime, skipped: dict, keys: list[str]) -> dict:
    """A skipped training reports what the run that trained the version found (its plan and group
    counts), so promote, score and the summary read the same task values as after a training."""
    import mlflow

    cfg = rt.settings.forecast
    prior = mlflow.MlflowClient().get_run(skipped["run_id"]).data
    plan_keys = ("season_length", "horizon", "backtest_windows", "min_train_periods", "max_history_periods")
    skipped.update({"frequency": prior.params.get("frequency"), "frequency_source": prior.params.get("frequency_source"),
                    **{k: int(prior.params[k]) for k in plan_keys if k in prior.params},
                    **{k: int(v) if k.startswith("groups_") else v for k, v in prior.metrics.items()},
                    "columns": {"group_keys": keys, "timestamp": cfg.columns.timestamp, "target": cfg.columns.target},
                    "metrics_table": rt.tables.path(TABLES["group_metrics"])})
    for k, v in skipped.items():
        rt.context.set(k, v)
    return skipped
