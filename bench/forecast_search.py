"""Per-group cost of the XGBoost candidate's hyperparameter search vs that candidate's backtest, in one run.

On the local environment's synthetic data (daily store x item series, 2 years) and its settings
(environments/local.yaml: the search budget, the plan inferred for daily data), per well-formed group:
    search   = forecast.tuning.tune (preprocess + n_trials XGBoost fits with early stopping)
    backtest = the XGBoost candidate's backtest as train_group runs it (forecast.models.BoostRun,
               the tuned params and tree count: 3 rolling-origin windows with conformal intervals,
               6 distinct fits)
    group    = forecast.train.train_group (every candidate's backtest, search, refit of the winner)
Sequential, one thread, in this process (what one Spark task does per group). Prints medians and
the ratios search/backtest and search/group, with the load average before and after.

    .venv/bin/python bench/forecast_search.py              # 8 groups
    .venv/bin/python bench/forecast_search.py --groups 4 --trials 20   # the cloud budget
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--trials", type=int, default=None, help="override search.n_trials (default: local.yaml's)")
    args = ap.parse_args()

    from mlkit_workloads.data.synthetic import sales
    from mlkit_workloads.forecast.frequency import plan
    from mlkit_workloads.forecast.models import BoostRun
    from mlkit_workloads.forecast.series import prepare
    from mlkit_workloads.forecast.train import train_group
    from mlkit_workloads.forecast.tuning import tune

    from envconfig.loader import load_environment

    cfg = load_environment("local", ROOT / "environments").workloads.forecast
    if args.trials:
        cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update={"n_trials": args.trials})})
    syn = cfg.synthetic
    df = sales(syn.stores, syn.items, syn.days, syn.seed, broken=False)
    col = cfg.columns
    p = plan(cfg, "D")
    load0 = os.getloadavg()
    rows = []
    for key, pdf in list(df.groupby(list(col.group_keys)))[: args.groups]:
        s = prepare(pdf, col.timestamp, col.target, list(col.features), p.freq, max_periods=p.max_periods).frame
        t = time.perf_counter()
        tuned = tune(s, list(col.features), p, cfg.search, seed=0)
        search = time.perf_counter() - t
        t = time.perf_counter()
        BoostRun(s, list(col.features), p, list(cfg.levels), tuned.best_iteration, 0, tuned.params).backtest()
        bt = time.perf_counter() - t
        t = time.perf_counter()
        res = train_group(pdf, cfg, p, seed=0)
        group = time.perf_counter() - t
        rows.append((search, bt, group, tuned.trials, tuned.best_iteration, res.model_type))
        print(f"  {'/'.join(map(str, key))}: search {search:.3f} s ({tuned.trials} trials, {tuned.best_iteration} "
              f"trees), xgboost backtest {bt:.3f} s, whole group {group:.3f} s -> {res.model_type}")
    load1 = os.getloadavg()
    a = np.array([r[:3] for r in rows])
    med = np.median(a, axis=0)
    print(f"\n{len(rows)} groups, n_trials {cfg.search.n_trials}, max_rounds {cfg.search.max_rounds}, "
          f"early_stopping_rounds {cfg.search.early_stopping_rounds}; load average {load0[0]:.1f} -> {load1[0]:.1f}")
    print(f"median per group: search {med[0]:.3f} s, xgboost backtest {med[1]:.3f} s, whole group {med[2]:.3f} s")
    print(f"search / xgboost backtest = {med[0] / med[1]:.2f}; search / whole group = {med[0] / med[2]:.2f} "
          f"(sums: {a[:, 0].sum() / a[:, 1].sum():.2f}, {a[:, 0].sum() / a[:, 2].sum():.2f})")


if __name__ == "__main__":
    main()
