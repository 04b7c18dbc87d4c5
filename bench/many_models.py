"""Many-models benchmark: how close train_many gets to the raw compute bound, in one run.

(a) raw bound   = sum of per-group fit times measured inside this run / cores
(b) train_many  = the task end to end (read table, applyInPandas, collect, one MLflow run,
                  bundle log + register, metrics table)
(c) naive       = one mlflow.xgboost.log_model per group, timed on a sample, extrapolated
Scoring: the score path's rows/s (applyInPandas + meta model; and mlflow's spark_udf for the
choice between them) vs raw booster.predict rows/s over the same rows / cores.

    python bench/many_models.py                 # 1000 groups x 1500 rows, 100 trees
    python bench/many_models.py --groups 100    # quick
Results are printed and written to bench/out/many_models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1500, help="rows (days) per group")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--naive-sample", type=int, default=100)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()

    from mlkit.local import mlflow_server
    from mlkit.local.runner import quiet_libraries
    from mlkit.local.spark import local_session

    quiet_libraries()
    out = ROOT / "bench" / "out"
    state = out / "state"
    shutil.rmtree(state, ignore_errors=True)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = mlflow_server.ensure(state, port)
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    spark = local_session(args.cores, app="bench-many-models")
    try:
        result = run(spark, args, state)
    finally:
        spark.stop()
        mlflow_server.stop(server)
    (out / "many_models.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def run(spark, args, state: Path) -> dict:
    import mlflow
    import pandas as pd
    import xgboost as xgb

    from mlkit_workloads import train_many
    from mlkit_workloads.context import LocalTaskContext
    from mlkit_workloads.data.synthetic import sales
    from mlkit_workloads.forecast.features import make_features
    from mlkit_workloads.runtime import TABLES, Runtime
    from mlkit_workloads.settings import WorkloadSettings
    from mlkit_workloads.tables import DeltaRsStore

    items = min(args.groups, 50)
    stores = int(np.ceil(args.groups / items))
    settings = WorkloadSettings.model_validate({"forecast": {
        "synthetic": {"stores": stores, "items": items, "days": args.rows},
        # One trial + final fit, a fixed tree count (early stopping patience = all rounds).
        "search": {"n_trials": 1, "max_rounds": args.trees, "early_stopping_rounds": args.trees},
        "score_periods": args.rows}})
    pdf = sales(stores, items, args.rows, broken=False)
    keep = pdf[["store", "item"]].drop_duplicates().head(args.groups)
    pdf = pdf.merge(keep)
    tables = DeltaRsStore(state / "tables")
    tables.append(TABLES["forecast"], pdf)
    ctx = LocalTaskContext("ingest")
    ctx.set("table", TABLES["forecast"])
    ctx.set("table_version", 0)
    rt = Runtime("bench", settings, spark, tables, ctx.for_task("train_many"))
    # Warm the Python workers (imports) so (b) measures the job, not interpreter start-up.
    spark.range(4 * args.cores).repartition(2 * args.cores).mapInPandas(_warm, "id long").count()

    t0 = time.perf_counter()
    res = train_many.run(rt)
    b = time.perf_counter() - t0
    metrics = tables.read_pandas(TABLES["group_metrics"])
    fit_sum = float(metrics.fit_seconds.sum())
    a = fit_sum / args.cores

    # (c) naive: one logged MLflow model per group, on a sample, extrapolated to every group.
    model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/forecast/{res['model_version']}"))
    index = json.loads((model_dir / "artifacts" / "bundle" / "index.json").read_text())
    sample = list(index["groups"].items())[: args.naive_sample]
    mlflow.set_experiment("/Shared/mlkit/bench-naive")
    reqs = ["xgboost-cpu==" + xgb.__version__]
    with mlflow.start_run(run_name="naive per-group log_model"):
        t1 = time.perf_counter()
        for key, info in sample:
            booster = xgb.Booster(model_file=bytearray((model_dir / "artifacts" / "bundle" / info["file"]).read_bytes()))
            mlflow.xgboost.log_model(booster, name=f"g{info['file'][7:12]}", pip_requirements=reqs)
        per_model = (time.perf_counter() - t1) / max(len(sample), 1)
    c = per_model * res["groups_ok"]

    # Scoring: raw predict over every group (sequential, / cores) vs the score task's path.
    groups = {k: v for k, v in index["groups"].items()}
    raw = 0.0
    for key, part in pdf.groupby(["store", "item"]):
        info = groups[json.dumps(list(key))]
        booster = xgb.Booster(model_file=bytearray((model_dir / "artifacts" / "bundle" / info["file"]).read_bytes()))
        x = xgb.DMatrix(make_features(part, "date", ["promo", "holiday"]))
        t = time.perf_counter()
        booster.predict(x)
        raw += time.perf_counter() - t
    rows = len(pdf)
    raw_rows_s = rows / (raw / args.cores)

    sdf = tables.read_spark(spark, TABLES["forecast"]).cache()
    sdf.count()
    local_model = str(model_dir)
    keys, cols = ["store", "item"], ["store", "item", "date", "sales", "promo", "holiday"]
    t2 = time.perf_counter()
    n = (sdf.select(*cols).groupBy(*keys)
         .applyInPandas(_apply_in_pandas_scorer(local_model, keys), _SCORE_SCHEMA).count())
    apply_s = time.perf_counter() - t2
    from pyspark.sql import functions as F

    # mlflow's spark_udf over the same meta model: Arrow batches of mixed groups, routed by row.
    udf = mlflow.pyfunc.spark_udf(spark, local_model, result_type="prediction double", env_manager="local")
    t3 = time.perf_counter()
    n_udf = sdf.select(udf(F.struct(*cols)).alias("p")).where("p.prediction IS NOT NULL").count()
    udf_s = time.perf_counter() - t3
    return {
        "groups": args.groups, "rows_per_group": args.rows, "trees": args.trees, "cores": args.cores,
        "groups_ok": res["groups_ok"],
        "a_raw_bound_s": round(a, 2), "b_train_many_s": round(b, 2), "efficiency_a_over_b": round(a / b, 3),
        "b_applyinpandas_s": res["train_seconds"], "b_tracking_s": res["tracking_seconds"],
        "tracking_share_of_wall": round(res["tracking_seconds"] / b, 3),
        "models_per_s": round(res["groups"] / b, 1),
        "c_naive_per_model_s": round(per_model, 3), "c_naive_extrapolated_s": round(c, 1),
        "c_naive_over_bundle_tracking": round(c / max(res["tracking_seconds"], 1e-9), 1),
        "score_rows": rows, "score_rows_applyinpandas": n, "score_rows_spark_udf": n_udf,
        "raw_predict_rows_per_s": round(raw_rows_s), "applyinpandas_rows_per_s": round(n / apply_s),
        "spark_udf_rows_per_s": round(n_udf / udf_s),
        "scoring_ratio_applyinpandas_vs_raw": round(n / apply_s / raw_rows_s, 3),
        "scoring_ratio_spark_udf_vs_raw": round(n_udf / udf_s / raw_rows_s, 3),
    }


_SCORE_SCHEMA = "store string, item string, date timestamp, prediction double"
_LOADED: dict = {}


def _apply_in_pandas_scorer(model_path: str, keys: list[str]):
    """The alternative to spark_udf: one group per call, its booster loaded once per worker."""

    def predict(key, pdf):
        import mlflow

        if model_path not in _LOADED:
            _LOADED[model_path] = mlflow.pyfunc.load_model(model_path).unwrap_python_model().models
        models = _LOADED[model_path]
        out = pdf[[*keys, "date"]].copy()
        out["prediction"] = models.predict_group(tuple(str(k) for k in key), pdf).astype(float)
        return out

    return predict


def _warm(it):
    import mlflow  # noqa: F401
    import optuna  # noqa: F401
    import xgboost  # noqa: F401

    yield from it


if __name__ == "__main__":
    main()
