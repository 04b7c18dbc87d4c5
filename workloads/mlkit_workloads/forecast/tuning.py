"""Per-group hyperparameter search of the XGBoost candidate: Optuna trials, each an XGBoost fit
with early stopping, on the group's mlforecast feature matrix (``MLForecast.preprocess``).

What the search may see: the periods up to the first backtest origin (the last period the first
backtest window trains on). Its validation slice is the last ``horizon`` of those periods, its
training part everything before, both in time order; no backtest period enters tuning, so the
backtest still judges the tuned candidate on data it never saw.

The score is the validation MAE of the one-step-ahead feature rows. The target is differenced
once (``Differences([1])``), so the MAE of the predicted change is the MAE of the predicted level
one period ahead, in the target's units.

Trial 0 is always the untuned default (``DEFAULT``): the best trial is then never worse than the
default on the validation slice. Deterministic for a seed (TPE sampler seeded, XGBoost seeded,
one thread) unless ``timeout_seconds`` cuts the search short.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass

import pandas as pd

from .frequency import Plan
from .models import XGB_DEFAULT as DEFAULT
from .models import long_frame, mlforecast_model


def suggest(trial) -> dict:
    """The small search space: tree depth and size of leaves, step size, row sampling, L2."""
    return {"max_depth": trial.suggest_int("max_depth", 2, 8),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True)}


@dataclass
class Tuned:
    """The search's outcome: what defines the XGBoost candidate of a group."""

    params: dict
    best_iteration: int  # trees of the best trial at its best validation round (the refits use this many)
    trials: int
    val_mae: float  # the best trial's validation MAE (one step ahead)
    default_val_mae: float  # trial 0 (the untuned default) with early stopping
    val_start: pd.Timestamp
    val_end: pd.Timestamp  # the first backtest origin: nothing after it is seen
    seconds: float

    def as_row(self) -> dict:
        return {"search_trials": self.trials, "search_params": json.dumps(self.params, sort_keys=True),
                "search_best_iteration": self.best_iteration, "search_val_mae": self.val_mae,
                "search_seconds": self.seconds}


def tuning_history(series: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The periods the search may see: up to and including the first backtest origin."""
    return series.iloc[: len(series) - plan.windows * plan.horizon]


def feature_matrix(series: pd.DataFrame, features: list[str], plan: Plan) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """mlforecast's own rows for ``series`` (lags, rolling mean, calendar, exogenous + previous values,
    differenced target): X, y and ds, in time order, rows without full lags dropped."""
    mlf = mlforecast_model(plan, 1, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = mlf.preprocess(long_frame(series, features), static_features=[], dropna=True)
    prep = prep.sort_values("ds", kind="stable")
    cols = list(mlf.ts.features_order_)
    return prep[cols].astype(float), prep["y"].astype(float), prep["ds"]


def split(x: pd.DataFrame, y: pd.Series, ds: pd.Series, horizon: int):
    """Time-ordered: everything before the last ``horizon`` rows to fit, those rows to validate."""
    if len(x) < horizon + 10:
        raise ValueError(f"too few feature rows to tune on ({len(x)} before the first backtest origin; need "
                         f"{horizon} to validate + 10 to fit)")
    cut = len(x) - horizon
    return (x.iloc[:cut], y.iloc[:cut]), (x.iloc[cut:], y.iloc[cut:]), ds.iloc[cut:]


def xgb_params(params: dict, seed: int) -> dict:
    return {"objective": "reg:squarederror", "eval_metric": "mae", "nthread": 1, "seed": seed % 2**31,
            "verbosity": 0, **params}


def tune(series: pd.DataFrame, features: list[str], plan: Plan, budget, seed: int = 0) -> Tuned:
    """Optuna search for one group (``budget``: settings.SearchBudget). Raises on a search that cannot
    run (too short, XGBoost errors): the caller drops the candidate, not the group."""
    import optuna
    import xgboost as xgb

    started = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x, y, ds = feature_matrix(tuning_history(series, plan), features, plan)
    (x_fit, y_fit), (x_val, y_val), val_ds = split(x, y, ds, plan.horizon)
    # One thread for the DMatrix too: Spark runs one group per core.
    d_fit = xgb.DMatrix(x_fit, label=y_fit, nthread=1)
    d_val = xgb.DMatrix(x_val, label=y_val, nthread=1)
    rounds: dict[int, int] = {}

    def objective(trial) -> float:
        params = suggest(trial)
        booster = xgb.train(xgb_params(params, seed), d_fit, num_boost_round=budget.max_rounds,
                            evals=[(d_val, "val")], early_stopping_rounds=budget.early_stopping_rounds,
                            verbose_eval=False)
        rounds[trial.number] = booster.best_iteration + 1
        return float(booster.best_score)

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed % 2**31))
    study.enqueue_trial(DEFAULT)
    study.optimize(objective, n_trials=budget.n_trials, timeout=budget.timeout_seconds)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"no search trial completed ({len(study.trials)} started)")
    best = study.best_trial
    default = next((t for t in done if t.number == 0), None)
    return Tuned(params=dict(best.params), best_iteration=rounds[best.number], trials=len(done),
                 val_mae=float(best.value), default_val_mae=float(default.value) if default else float("nan"),
                 val_start=pd.Timestamp(val_ds.iloc[0]), val_end=pd.Timestamp(val_ds.iloc[-1]),
                 seconds=time.perf_counter() - started)

