"""Train one group's model: pure pandas in, one result row out. Runs inside applyInPandas.

Every outcome is a status, never an exception: ``ok``, ``skipped`` (nothing worth training)
or ``failed`` (something broke). One group's failure must not fail the Spark task.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ..settings import Forecast
from .features import make_features
from .metrics import all_metrics, seasonal_naive, time_split

MAX_MISSING_SHARE = 0.2  # more missing targets than this: the series is broken, not sparse
METRICS = ("mae", "rmse", "wape", "baseline_mae", "baseline_rmse", "baseline_wape")


@dataclass
class GroupResult:
    status: str  # ok | skipped | failed
    reason: str = ""
    n_rows: int = 0
    n_train: int = 0
    n_valid: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    best_params: dict = field(default_factory=dict)
    best_iteration: int = 0
    n_trials: int = 0
    fit_seconds: float = 0.0
    model: bytes | None = None

    def row(self) -> dict:
        out = asdict(self)
        out.update({m: float(self.metrics.get(m, np.nan)) for m in METRICS})
        out["best_params"] = json.dumps(self.best_params)
        del out["metrics"]
        return out


def _xgb_params(trial) -> dict:
    return {
        "objective": "reg:squarederror",
        "eval_metric": "mae",
        "nthread": 1,  # one core per model: Spark runs one group per core
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "eta": trial.suggest_float("eta", 0.03, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.6, 1.0),
        "lambda": trial.suggest_float("lambda", 1e-3, 10.0, log=True),
    }


def train_group(pdf: pd.DataFrame, cfg: Forecast, seed: int = 0) -> GroupResult:
    import xgboost as xgb

    try:
        # One thread for everything XGBoost does for this group, not only the boosting: Spark runs
        # one group per core, and OpenMP regions sized to all cores (DMatrix, model I/O) fight the
        # other task (a booster load measured 3-12 ms that way vs 0.5 ms single-threaded).
        with xgb.config_context(nthread=1):
            return _train(pdf, cfg, seed)
    except Exception as e:  # noqa: BLE001 - the group fails, the job goes on
        last = traceback.extract_tb(e.__traceback__)[-1]
        return GroupResult("failed", f"{type(e).__name__}: {e} (at {last.name}:{last.lineno})"[:500], n_rows=len(pdf))


def _train(pdf: pd.DataFrame, cfg: Forecast, seed: int) -> GroupResult:
    import optuna
    import xgboost as xgb

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    col = cfg.columns
    started = time.perf_counter()
    n = len(pdf)
    y_all = pd.to_numeric(pdf[col.target], errors="coerce")
    missing = float(y_all.isna().mean()) if n else 0.0
    if missing > MAX_MISSING_SHARE:
        return GroupResult("failed", f"{missing:.0%} of target values missing (max {MAX_MISSING_SHARE:.0%})", n_rows=n)
    data = pdf.assign(**{col.target: y_all}).dropna(subset=[col.target])
    needed = cfg.min_train_rows + cfg.validation_periods
    if len(data) < needed:
        return GroupResult("skipped", f"too few rows ({len(data)} < {needed})", n_rows=n)
    if data[col.target].nunique() <= 1:
        return GroupResult("skipped", "constant target (nothing to learn)", n_rows=n)

    train, valid = time_split(data, col.timestamp, cfg.validation_periods)
    x_tr, x_va = make_features(train, col.timestamp, col.features), make_features(valid, col.timestamp, col.features)
    y_tr, y_va = train[col.target].to_numpy(float), valid[col.target].to_numpy(float)
    # nthread=1 on every DMatrix too, not only on the booster: XGBoost's default thread pool costs
    # ~7 ms per DMatrix on 2 cores (vs 0.7 ms) and fights the other Spark task for the cores.
    d_tr, d_va = xgb.DMatrix(x_tr, label=y_tr, nthread=1), xgb.DMatrix(x_va, label=y_va, nthread=1)

    boosters: dict[int, xgb.Booster] = {}

    def objective(trial: optuna.Trial) -> float:
        booster = xgb.train(_xgb_params(trial), d_tr, num_boost_round=cfg.search.max_rounds,
                            evals=[(d_va, "valid")], early_stopping_rounds=cfg.search.early_stopping_rounds,
                            verbose_eval=False)
        boosters[trial.number] = booster
        return float(booster.best_score)

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=cfg.search.n_trials, timeout=cfg.search.timeout_seconds)
    best = study.best_trial
    best_booster = boosters[best.number]
    rounds = best_booster.best_iteration + 1
    pred = best_booster.predict(d_va, iteration_range=(0, rounds))
    base = seasonal_naive(y_tr, len(y_va), cfg.season_length)
    metrics = {**all_metrics(y_va, pred), **all_metrics(y_va, base, "baseline_")}

    # Final fit on all the data with the chosen parameters and tree count: the model that scores.
    params = {**_xgb_params(optuna.trial.FixedTrial(best.params))}
    d_all = xgb.DMatrix(make_features(data, col.timestamp, col.features), label=data[col.target].to_numpy(float),
                        nthread=1)
    final = xgb.train(params, d_all, num_boost_round=rounds, verbose_eval=False)
    return GroupResult("ok", "", n_rows=n, n_train=len(train), n_valid=len(valid), metrics=metrics,
                       best_params=best.params, best_iteration=rounds, n_trials=len(study.trials),
                       fit_seconds=time.perf_counter() - started, model=bytes(final.save_raw("ubj")))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
