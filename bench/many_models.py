"""Many-models benchmark: the forecast job's real tasks end to end, each next to its raw bound, in one run.

    python bench/many_models.py                      # quick: 1,000 groups x 1,500 rows
    python bench/many_models.py --scale reference    # the reference's shape: 10,000 groups x 4,000 rows = 40M rows
    python bench/many_models.py --profile 4          # time 4 groups of the per-group work in process, extrapolate

Tasks (the job's own code: ingest, train_many, promote, score), on the local environment's settings
(environments/local.yaml: the default job's search budget) with the data source replaced by
synthetic parquet files written here in chunks (never all rows in one pandas frame):
    ingest      wall; 40M rows go Spark -> staged Parquet -> delta-rs as a stream of Arrow batches
    train_many  wall vs raw bound = sum over groups of fit_seconds (measured inside train_group:
                series preparation, the search, every candidate's rolling-origin backtest, the
                winner's refit) / cores
    promote     wall (the gates over the metrics table)
    score       the task's wall and its predict stage (applyInPandas + collect) vs raw bound = in
                this process: each group's model read from the bundle + the meta model's forecast
                of all their rows in one call, / cores (on a sample of groups above 2,000, scaled)
Per task: wall, the ratio, models per core-minute, vCPU-seconds per model next to the reference's
(192 vCPU x 1800 s / 10,000 = 34.6 for training, 192 x 1200 / 10,000 = 23 for scoring), peak RSS of
this driver + the JVM + the Python workers (the MLflow server excluded), and the load average.

``--models`` sets the per-group candidates (default: local.yaml's: seasonal naive + AutoETS +
AutoTheta + XGBoost with its search). Each group's last 730 days are modelled (the daily default of
``max_history_periods``), so a 4,000-day group costs what a 2-year one does; ``--profile`` says
where a group's time goes. bench/README.md says what each measured run did per group.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALES = {"quick": (1000, 1500), "reference": (10_000, 4000)}
ITEMS = 50  # items per store: groups = stores x 50
CHUNK_GROUPS = 250  # groups generated and written per parquet file (~1.1M rows at 4,000 days)
RAW_SAMPLE = 2000  # groups timed for the scoring raw bound
REFERENCE = {"train_many": 192 * 1800 / 10_000, "score": 192 * 1200 / 10_000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", choices=list(SCALES), default="quick")
    ap.add_argument("--groups", type=int, help="override the scale's groups")
    ap.add_argument("--rows", type=int, help="override the scale's rows (days) per group")
    ap.add_argument("--models", help="comma-separated candidates (default: local.yaml's)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--profile", type=int, default=0, help="time N groups in process, extrapolate, stop")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    groups, rows = SCALES[args.scale]
    args.groups, args.rows = args.groups or groups, args.rows or rows
    cfg = forecast_settings(args, None)
    if args.profile:
        print(json.dumps(profile(cfg, args), indent=2))
        return

    from mlkit.local import mlflow_server
    from mlkit.local.runner import quiet_libraries
    from mlkit_workloads.local_spark import local_session

    quiet_libraries()
    out = Path(args.out)
    state = out / f"state-{args.scale}"
    shutil.rmtree(state, ignore_errors=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = mlflow_server.ensure(state, port)
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    spark = local_session(args.cores, app="bench-many-models")
    meter = Meter(exclude=server.pid)
    try:
        result = run(spark, args, state, meter)
    finally:
        meter.stop()
        spark.stop()
        mlflow_server.stop(server)
    path = out / f"many_models_{args.scale}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(verdict(result))


def forecast_settings(args, state: Path | None):
    """local.yaml's forecast settings (the default job's search budget), the bench's source and candidates."""
    from envconfig.loader import load_environment

    workloads = load_environment("local", ROOT / "environments").workloads
    fc = workloads.forecast.model_dump()
    if args.models:
        fc["models"] = args.models.split(",")
    if state is not None:
        fc["source"] = {"format": "parquet", "path": str(state / "source")}
        fc["future_features"] = {"format": "parquet", "path": str(state / "future")}
        if fc["models"] == ["seasonal_naive"]:  # nothing can beat the baseline: that gate cannot pass
            fc["gates"]["min_share_beating_baseline"] = 0.0
    return workloads.model_copy(update={"forecast": type(workloads.forecast).model_validate(fc)})


def chunks(args):
    """The synthetic store x item data, CHUNK_GROUPS groups at a time: (history, future features)."""
    from mlkit_workloads.data.synthetic import future_features, sales

    stores = int(np.ceil(args.groups / ITEMS))
    per = max(1, CHUNK_GROUPS // ITEMS)
    for c, first in enumerate(range(0, stores, per)):
        n = min(per, stores - first)
        seed = 7 + c
        names = {f"S{s + 1:02d}": f"S{first + s + 1:04d}" for s in range(n)}
        hist = sales(n, ITEMS, args.rows, seed, broken=False)
        fut = future_features(n, ITEMS, args.rows, seed, periods=35, broken=False)
        left = args.groups - first * ITEMS  # the last store may be partial
        for df in (hist, fut):
            df["store"] = df["store"].map(names)
        if left < n * ITEMS:
            keep = hist[["store", "item"]].drop_duplicates().head(left)
            hist, fut = hist.merge(keep), fut.merge(keep)
        yield c, hist, fut


def write_source(args, state: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    for d in ("source", "future"):
        (state / d).mkdir(parents=True, exist_ok=True)
    for c, hist, fut in chunks(args):
        pq.write_table(pa.Table.from_pandas(hist, preserve_index=False), state / "source" / f"part-{c:05d}.parquet",
                       coerce_timestamps="us")
        pq.write_table(pa.Table.from_pandas(fut, preserve_index=False), state / "future" / f"part-{c:05d}.parquet",
                       coerce_timestamps="us")
        rows += len(hist)
    return rows


class Meter:
    """Peak RSS of this process and its descendants (driver, JVM, Python workers), sampled every 0.5 s,
    the MLflow server's process tree excluded; the highest 1-minute load average seen."""

    def __init__(self, exclude: int | None):
        import psutil

        self.psutil, self.exclude = psutil, exclude
        self.peak, self.load, self._stop = 0, 0.0, threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def rss(self) -> int:
        me = self.psutil.Process()
        skip = set()
        if self.exclude:
            try:
                server = self.psutil.Process(self.exclude)
                skip = {server.pid, *(p.pid for p in server.children(recursive=True))}
            except self.psutil.Error:
                pass
        total = 0
        for p in [me, *me.children(recursive=True)]:
            if p.pid in skip:
                continue
            try:
                total += p.memory_info().rss
            except self.psutil.Error:
                pass
        return total

    def _loop(self):
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, self.rss())
            self.load = max(self.load, os.getloadavg()[0])

    def reset(self):
        self.peak, self.load = self.rss(), os.getloadavg()[0]

    def stop(self):
        self._stop.set()


def task(meter: Meter, name: str, fn, log: dict):
    """Run one task, recording its wall, peak RSS and the load average around it."""
    meter.reset()
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    res = fn()
    wall = time.perf_counter() - t
    log[name] = {"wall_s": round(wall, 2), "peak_rss_mb": round(meter.peak / 2**20), "load_start": round(load0, 2),
                 "load_max": round(meter.load, 2), "load_end": round(os.getloadavg()[0], 2)}
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {wall:.1f} s, peak RSS {meter.peak / 2**20:.0f} MB, "
          f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    return res


def run(spark, args, state: Path, meter: Meter) -> dict:
    import mlflow

    from mlkit_workloads import ingest, promote, score, train_many
    from mlkit_workloads.context import LocalTaskContext
    from mlkit_workloads.runtime import TABLES, Runtime
    from mlkit_workloads.tables import DeltaRsStore

    settings = forecast_settings(args, state)
    cfg = settings.forecast
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = [round(x, 2) for x in os.getloadavg()]
    tasks: dict[str, dict] = {}
    rows = task(meter, "generate", lambda: write_source(args, state), tasks)
    tables = DeltaRsStore(state / "tables")
    ctx = LocalTaskContext()
    rt = lambda name: Runtime("bench", settings, spark, tables, ctx.for_task(name))  # noqa: E731
    ing = task(meter, "ingest", lambda: ingest.run(rt("ingest"), "forecast"), tasks)
    # Warm the Python workers (imports) so train_many measures the job, not interpreter start-up.
    spark.range(4 * args.cores).repartition(2 * args.cores).mapInPandas(_warm, "id long").count()
    res = task(meter, "train_many", lambda: train_many.run(rt("train_many")), tasks)
    metrics = tables.read_pandas(TABLES["group_metrics"])
    metrics = metrics[metrics.run_id == res["run_id"]]
    fit_sum = float(metrics.fit_seconds.sum())
    tm = tasks["train_many"]
    tm.update(raw_bound_s=round(fit_sum / args.cores, 2), fit_seconds_sum=round(fit_sum, 1),
              ratio=round(fit_sum / args.cores / tm["wall_s"], 3), groups=res["groups"], groups_ok=res["groups_ok"],
              tracking_s=res["tracking_seconds"], tracking_share=round(res["tracking_seconds"] / tm["wall_s"], 4),
              stage_s=res["train_seconds"], timings=res["timings"], layout=res.get("layout"),
              winners=metrics[metrics.status == "ok"].model_type.value_counts().to_dict())
    per_model(tm, res["groups_ok"], args.cores, "train_many")
    client = mlflow.MlflowClient()
    exp = client.get_experiment(client.get_run(res["run_id"]).info.experiment_id)
    tm["mlflow_runs"] = len(client.search_runs([exp.experiment_id]))
    tm["bundles"] = len(client.search_model_versions(f"name='{res['model_name']}'"))
    pro = task(meter, "promote", lambda: promote.run(rt("promote"), "forecast"), tasks)
    tasks["promote"]["passed"] = pro["passed"]
    sc = task(meter, "score", lambda: score.run(rt("score")), tasks)
    raw = raw_scoring(res, args)
    st = tasks["score"]
    stage = sc["timings"]["predict_stage"]
    st.update(rows=sc["rows_scored"], groups=sc["groups_scored"], timings=sc["timings"], raw=raw,
              predict_tasks=sc.get("predict_tasks"),
              raw_bound_s=round(raw["seconds_all_groups"] / args.cores, 2),
              ratio_stage=round(raw["seconds_all_groups"] / args.cores / stage, 3),
              ratio_stage_per_group_calls=round(raw["per_group_calls_all_groups_s"] / args.cores / stage, 3),
              ratio_task=round(raw["seconds_all_groups"] / args.cores / st["wall_s"], 3))
    per_model(st, sc["groups_scored"], args.cores, "score")
    return {"scale": args.scale, "groups": args.groups, "rows_per_group": args.rows, "rows": rows,
            "rows_ingested": ing["rows_inserted"], "cores": args.cores, "started": started,
            "per_group_work": {"models": ["seasonal_naive", *[m for m in cfg.models if m != "seasonal_naive"]],
                               "search": cfg.search.model_dump(), "backtest_windows": cfg.backtest_windows,
                               "plan": {k: res[k] for k in ("frequency", "season_length", "horizon") if k in res}},
            "load_average_at_start": load_start, "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "tasks": tasks}


def per_model(t: dict, models: int, cores: int, name: str) -> None:
    core_min = t["wall_s"] * cores / 60
    t["models_per_core_minute"] = round(models / core_min, 1) if core_min else None
    t["vcpu_s_per_model"] = round(t["wall_s"] * cores / max(models, 1), 3)
    t["reference_vcpu_s_per_model"] = round(REFERENCE[name], 1)


def raw_scoring(res: dict, args) -> dict:
    """In this process, on up to RAW_SAMPLE groups scaled to all: every sampled group's model read
    from the bundle (decompress + unpickle), then the meta model's forecast of all their future
    rows in ONE predict call (what a scoring task does with its bucket). Also timed, for the
    earlier rounds' definition: one predict call per group (~2-3 ms more routing per group)."""
    import mlflow
    import pandas as pd

    from mlkit_workloads import score as S
    from mlkit_workloads.forecast.meta_model import GroupModels

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{res['model_name']}/{res['model_version']}"))
    fut = pd.read_parquet(Path(args.out) / f"state-{args.scale}" / "future")
    fut["date"] = pd.to_datetime(fut["date"], utc=True).dt.tz_localize(None)
    bundle = S.model_bundle(local)
    models = GroupModels(bundle)
    rows, _ = S.future_rows(models, fut)
    keys = models.keys
    parts = list(rows.groupby(keys, sort=False))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(parts), size=min(RAW_SAMPLE, len(parts)), replace=False)
    models = GroupModels(bundle, max_models=len(pick) + 1, max_bytes=2**40)  # every sampled model stays loaded
    t = time.perf_counter()
    for i in pick:
        models.model(parts[i][0])
    load = time.perf_counter() - t
    sample = pd.concat([parts[i][1] for i in pick], ignore_index=True)
    t = time.perf_counter()
    out = models.predict(sample)
    pred = time.perf_counter() - t
    assert (out.error == "").all(), out.error[out.error != ""].iloc[0]
    fresh = GroupModels(bundle)
    t = time.perf_counter()
    for i in pick:
        fresh.model(parts[i][0])
        fresh.predict(parts[i][1])
    per_group = time.perf_counter() - t
    scale = len(parts) / max(len(pick), 1)
    return {"groups_timed": len(pick), "groups": len(parts), "load_s": round(load, 3), "predict_s": round(pred, 3),
            "seconds_all_groups": round((load + pred) * scale, 3),
            "per_group_calls_s": round(per_group, 3), "per_group_calls_all_groups_s": round(per_group * scale, 3)}


def profile(settings, args) -> dict:
    """Where a group's time goes: N groups of the bench's data, in process, one thread, per phase."""
    import warnings

    from mlkit_workloads.forecast.frequency import plan
    from mlkit_workloads.forecast.models import BoostRun, backtest, candidates, fit
    from mlkit_workloads.forecast.series import prepare
    from mlkit_workloads.forecast.train import TUNED
    from mlkit_workloads.forecast.tuning import tune

    warnings.simplefilter("ignore")
    cfg = settings.forecast
    col, feats, levels = cfg.columns, list(cfg.columns.features), list(cfg.levels)
    p = plan(cfg, "D")
    hist = next(chunks(argparse.Namespace(groups=args.profile, rows=args.rows)))[1]
    load0 = os.getloadavg()[0]
    phases: dict[str, list[float]] = {}
    for _, pdf in hist.groupby(list(col.group_keys)):
        t = time.perf_counter()
        s = prepare(pdf, col.timestamp, col.target, feats, p.freq, max_periods=p.max_periods).frame
        phases.setdefault("prepare", []).append(time.perf_counter() - t)
        size, params = cfg.search.max_rounds, None
        if TUNED in cfg.models:
            t = time.perf_counter()
            tuned = tune(s, feats, p, cfg.search, 0)
            phases.setdefault("search", []).append(time.perf_counter() - t)
            size, params = tuned.best_iteration, tuned.params
        for kind in candidates(list(cfg.models)):  # as train_group runs them
            t = time.perf_counter()
            if kind == TUNED:
                run = BoostRun(s, feats, p, levels, size, 0, params)
                run.backtest()
            else:
                backtest(kind, s, [], p, levels)
            phases.setdefault(f"backtest {kind}", []).append(time.perf_counter() - t)
            t = time.perf_counter()
            run.fit() if kind == TUNED else fit(kind, s, feats, p, levels)
            phases.setdefault(f"refit {kind} (if it wins)", []).append(time.perf_counter() - t)
    mean = {k: round(float(np.mean(v)), 3) for k, v in phases.items()}
    per_group = sum(mean.values())
    return {"groups_timed": args.profile, "rows_per_group": args.rows, "models": cfg.models,
            "search": cfg.search.model_dump(), "mean_seconds_per_group": mean,
            "per_group_s": round(per_group, 3),
            f"extrapolated_train_hours_for_{args.groups}_groups_on_{args.cores}_cores":
                round(per_group * args.groups / args.cores / 3600, 2),
            "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def verdict(r: dict) -> str:
    t, s = r["tasks"]["train_many"], r["tasks"]["score"]
    goal_train = 0.90 if r["scale"] == "reference" else 0.85

    def line(name, value, goal, ok):
        return f"  {name:52s} {value:>9}   goal {goal:8s} {'MET' if ok else 'NOT MET'}"

    lines = [f"many models ({r['scale']}): {r['groups']} groups x {r['rows_per_group']} rows = {r['rows']:,} rows, "
             f"{r['cores']} cores, per group: {', '.join(r['per_group_work']['models'])}; started {r['started']}, "
             f"load average {r['load_average_at_start'][0]} -> {r['load_average_at_end'][0]}"]
    for name in ("generate", "ingest", "train_many", "promote", "score"):
        x = r["tasks"][name]
        extra = ""
        if "vcpu_s_per_model" in x:
            extra = (f", {x['models_per_core_minute']} models/core-min, {x['vcpu_s_per_model']} vCPU-s/model "
                     f"(reference {x['reference_vcpu_s_per_model']})")
        lines.append(f"  {name:10s} {x['wall_s']:8.1f} s  peak RSS {x['peak_rss_mb']} MB  "
                     f"load {x['load_start']} / max {x['load_max']} / {x['load_end']}{extra}")
    lines += [
        line(f"train_many: raw bound {t['raw_bound_s']} s / wall {t['wall_s']} s", f"{t['ratio']:.3f}",
             f">= {goal_train}", t["ratio"] >= goal_train),
        line("tracking share of train_many wall", f"{t['tracking_share']:.1%}", "<= 2 %", t["tracking_share"] <= 0.02),
        line("MLflow runs / bundles of the training", f"{t['mlflow_runs']} / {t['bundles']}", "1 / 1",
             t["mlflow_runs"] == 1 and t["bundles"] == 1),
        line(f"score predict stage: raw {s['raw_bound_s']} s / {s['timings']['predict_stage']} s",
             f"{s['ratio_stage']:.3f}", ">= 0.8", s["ratio_stage"] >= 0.8),
        f"  score predict stage vs the earlier raw bound (one predict call per group): {s['ratio_stage_per_group_calls']:.3f}",
        f"  score task: raw / wall = {s['ratio_task']:.3f} (the task also reads the history and writes predictions)",
    ]
    return "\n".join(lines)


def _warm(it):
    import mlflow  # noqa: F401
    import mlforecast  # noqa: F401
    import optuna  # noqa: F401
    import statsforecast  # noqa: F401
    import xgboost  # noqa: F401

    yield from it


if __name__ == "__main__":
    main()
