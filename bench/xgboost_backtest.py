"""The XGBoost candidate's backtest + refit per group: mlforecast's path vs the shared-fit one, in one run.

On the synthetic store x item data (daily, ``--days`` periods, promo and holiday features) and the
local environment's settings (environments/local.yaml: levels, the search budget, the plan for daily
data: 3 backtest windows of 28 days, conformal intervals from 2 windows), per group, after the group's
own search (``tuning.tune``, not timed; its params and tree count are what both paths fit):
    old = models.backtest("xgboost", ...) + models.fit("xgboost", ...)
          (MLForecast.cross_validation and fit with PredictionIntervals: 12 fits, pandas recursion)
    new = models.BoostRun(...).backtest() + .fit()
          (6 distinct fits on one feature matrix, the recursion replayed in numpy)
The two alternate which runs first. Sequential, one thread, in this process (one Spark task's work
per group). Prints the medians, the ratio, the largest absolute and relative differences over every
backtest column and the refit's 28-day forecast (mean and every band; numpy and library paths),
and the load average before and after.

    .venv/bin/python bench/xgboost_backtest.py               # 12 groups of 730 days
    .venv/bin/python bench/xgboost_backtest.py --groups 40
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _diff(a, b) -> tuple[float, float]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    gap = np.abs(a - b)
    return float(gap.max()), float((gap / np.maximum(np.abs(b), 1e-12)).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=12)
    ap.add_argument("--days", type=int, default=730)
    args = ap.parse_args()

    import warnings

    import pandas as pd

    from envconfig.loader import load_environment
    from mlkit_workloads.data.synthetic import future_features, sales
    from mlkit_workloads.forecast.frequency import plan
    from mlkit_workloads.forecast.models import BoostRun, _future_features, backtest, fit
    from mlkit_workloads.forecast.series import prepare
    from mlkit_workloads.forecast.tuning import tune

    warnings.simplefilter("ignore")
    cfg = load_environment("local", ROOT / "environments").workloads.forecast
    col, syn, levels = cfg.columns, cfg.synthetic, list(cfg.levels)
    features = list(col.features)
    stores = int(np.ceil(args.groups / syn.items))
    df = sales(stores, syn.items, args.days, syn.seed, broken=False)
    fut = future_features(stores, syn.items, args.days, syn.seed, periods=28, broken=False)
    p = plan(cfg, "D")
    groups = list(df.groupby(list(col.group_keys)))[: args.groups]
    futures = dict(list(fut.groupby(list(col.group_keys))))
    load0 = os.getloadavg()
    times, gaps = [], {"backtest": [], "forecast": []}
    for i, (key, pdf) in enumerate(groups):
        s = prepare(pdf, col.timestamp, col.target, features, p.freq).frame
        tuned = tune(s, features, p, cfg.search, seed=0)
        size, params = tuned.best_iteration, tuned.params

        def old():
            return (backtest("xgboost", s, features, p, levels, size, 0, params),
                    fit("xgboost", s, features, p, levels, size, 0, params))

        def new():
            run = BoostRun(s, features, p, levels, size, 0, params)
            if not run.fast:
                raise SystemExit(f"group {key}: the fast path was not taken")
            return run.backtest(), run.fit()

        took, out = {}, {}
        for name, f in ((("old", old), ("new", new)) if i % 2 == 0 else (("new", new), ("old", old))):
            t = time.perf_counter()
            out[name] = f()
            took[name] = time.perf_counter() - t
        times.append((took["old"], took["new"]))
        (cv_old, m_old), (cv_new, m_new) = out["old"], out["new"]
        gaps["backtest"].append(_diff(cv_new.drop(columns=["ds", "cutoff"]), cv_old.drop(columns=["ds", "cutoff"])))
        future = futures[key].rename(columns={col.timestamp: "ds"})
        future["ds"] = pd.to_datetime(future["ds"]).dt.tz_localize(None)
        reference = m_old.forecast(p.horizon, future).drop(columns="ds")
        x = _future_features(future, m_new.last, p.freq, p.horizon, m_new.features, m_new.last_features)
        for got in (m_new.forecast(p.horizon, future), m_new._library(p.horizon, x)):
            gaps["forecast"].append(_diff(got.drop(columns="ds"), reference))
        print(f"  {'/'.join(map(str, key))}: {len(s)} days, {size} trees; old {took['old']:.3f} s, "
              f"new {took['new']:.3f} s ({took['old'] / took['new']:.1f}x)")
    load1 = os.getloadavg()
    a = np.array(times)
    med = np.median(a, axis=0)
    print(f"\n{len(times)} groups of {args.days} days, {p.windows} backtest windows of {p.horizon}, levels {levels}; "
          f"load average {' '.join(f'{x:.2f}' for x in load0)} -> {' '.join(f'{x:.2f}' for x in load1)}")
    print(f"median per group: old (mlforecast) {med[0] * 1000:.0f} ms, new (shared fits) {med[1] * 1000:.0f} ms; "
          f"ratio {med[0] / med[1]:.1f}x (sums: {a[:, 0].sum() / a[:, 1].sum():.1f}x)")
    for what, g in gaps.items():
        g = np.array(g)
        print(f"max difference, {what}: abs {g[:, 0].max():.3g}, rel {g[:, 1].max():.3g}")


if __name__ == "__main__":
    main()
