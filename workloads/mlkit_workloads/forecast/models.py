"""The candidate models of a group, built on Nixtla's libraries, and the fitted :class:`Forecaster`.

- statsforecast: ``SeasonalNaive`` (the baseline, with the frequency's season), ``AutoETS``,
  ``AutoTheta``, ``AutoARIMA``; prediction intervals are the models' own.
- mlforecast: XGBoost on lags of the once-differenced target (``Differences([1])``: a tree then
  predicts changes, so it follows a trend or a level shift that calendar features cannot), a rolling
  mean over one season, a calendar feature of the period and the mapped exogenous features;
  recursive multi-step; each exogenous feature also enters with its previous period's value (the
  model predicts a change, and a promotion's change is "on today" minus "on yesterday");
  conformal prediction intervals (``PredictionIntervals``) from two extra
  windows of ``horizon`` periods. Its parameters and tree count come from the group's own search
  (``tuning.tune``: Optuna, early stopping, on the periods before the first backtest origin).

Each candidate runs alone, so one that fails (too short for its lags, an optimiser that does not
converge) is recorded and dropped, never the group.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .frequency import Plan

STATS = ("seasonal_naive", "auto_ets", "auto_theta", "auto_arima")
BASELINE = "seasonal_naive"
_DATE_FEATURES = {"daily": ["dayofweek", "month"], "weekly": ["month"], "monthly": ["month"],
                  "quarterly": ["quarter"], "yearly": []}


def _stats_model(kind: str, season: int):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    make = {"seasonal_naive": SeasonalNaive, "auto_ets": AutoETS, "auto_theta": AutoTheta, "auto_arima": AutoARIMA}
    return make[kind](season_length=season, alias=kind)


def lags(season: int) -> list[int]:
    return sorted(set(range(1, min(season, 13) + 1)) | {season})


# The XGBoost candidate's parameters before tuning (and trial 0 of every search, ``tuning.tune``).
XGB_DEFAULT = {"max_depth": 4, "learning_rate": 0.1, "min_child_weight": 1.0, "subsample": 0.9, "reg_lambda": 1.0}


def mlforecast_model(plan: Plan, trees: int, seed: int, params: dict | None = None):
    """``params``: the group's searched XGBoost parameters (``tuning.tune``); none: the defaults."""
    import xgboost as xgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import Differences

    model = xgb.XGBRegressor(n_estimators=trees, **{**XGB_DEFAULT, **(params or {})}, n_jobs=1,
                             random_state=seed % 2**31)
    return MLForecast(models={"xgboost": model}, freq=plan.freq, lags=lags(plan.season_length),
                      lag_transforms={1: [RollingMean(window_size=plan.season_length)]},
                      date_features=_DATE_FEATURES[plan.family], target_transforms=[Differences([1])])


def _intervals(plan: Plan):
    from mlforecast.utils import PredictionIntervals

    return PredictionIntervals(n_windows=2, h=plan.horizon)


PREV = "__prev"


def _with_previous(x: pd.DataFrame, features: list[str], before: dict[str, float] | None = None) -> pd.DataFrame:
    """Add ``f__prev``: each feature's value one period earlier (``before``: the values just before x)."""
    out = x.copy()
    for f in features:
        prev = out[f].shift(1)
        prev.iloc[:1] = before[f] if before is not None else out[f].iloc[0]
        out[f + PREV] = prev.to_numpy()
    return out


def long_frame(series: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    return _with_previous(series[["ds", "y", *features]], features).assign(unique_id="g")


def _rename(df: pd.DataFrame, alias: str, levels: list[int]) -> pd.DataFrame:
    cols = {alias: "mean", **{f"{alias}-lo-{lv}": f"lo_{lv}" for lv in levels},
            **{f"{alias}-hi-{lv}": f"hi_{lv}" for lv in levels}}
    keep = [c for c in ("ds", "cutoff", "y") if c in df.columns]
    return df[keep + list(cols)].rename(columns=cols).reset_index(drop=True)


def backtest(kind: str, series: pd.DataFrame, features: list[str], plan: Plan, levels: list[int],
             trees: int = 100, seed: int = 0, params: dict | None = None) -> pd.DataFrame:
    """Rolling-origin backtest: ``plan.windows`` windows of ``plan.horizon`` periods, refit before each.
    Returns ds, cutoff, y, mean, lo_L, hi_L (one row per backtest period)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind in STATS:
            from statsforecast import StatsForecast

            sf = StatsForecast(models=[_stats_model(kind, plan.season_length)], freq=plan.freq, n_jobs=1)
            cv = sf.cross_validation(h=plan.horizon, df=long_frame(series, []), n_windows=plan.windows,
                                     step_size=plan.horizon, level=levels)
        else:
            mlf = mlforecast_model(plan, trees, seed, params)
            cv = mlf.cross_validation(long_frame(series, features), n_windows=plan.windows, h=plan.horizon,
                                      step_size=plan.horizon, static_features=[], as_numpy=True,
                                      prediction_intervals=_intervals(plan), level=levels)
    return _rename(cv, kind, levels)


class Forecaster:
    """One group's fitted model: forecasts the periods after the history it was fitted on.

    Pickled into the meta model's bundle (cloudpickle, zstd). ``last`` and ``freq`` say where its
    future starts; ``max_steps`` is the horizon the intervals were calibrated for.
    """

    def __init__(self, kind: str, fitted, plan: Plan, last: pd.Timestamp, features: list[str], levels: list[int],
                 last_features: dict[str, float] | None = None):
        self.kind, self.fitted, self.freq = kind, fitted, plan.freq
        self.last, self.features, self.levels, self.max_steps = pd.Timestamp(last), list(features), list(levels), plan.horizon
        self.last_features = dict(last_features or {})  # the features' values in the last trained period

    def forecast(self, steps: int, future: pd.DataFrame | None = None) -> pd.DataFrame:
        """The next ``steps`` periods: ds, mean, lo_L, hi_L. ``future``: ds + the features for those
        periods (only models that use features need it; ValueError naming what is missing)."""
        if not 1 <= steps <= self.max_steps:
            raise ValueError(f"can forecast 1 to {self.max_steps} periods after {self.last.date()}, not {steps}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.kind in STATS:
                out = self.fitted.predict(h=steps, level=self.levels)
            else:
                x = None
                if self.features:
                    x = _future_features(future, self.last, self.freq, steps, self.features, self.last_features)
                out = self.fitted.predict(h=steps, level=self.levels, X_df=x)
        return _rename(out, self.kind, self.levels)


def _future_features(future: pd.DataFrame | None, last, freq: str, steps: int, features: list[str],
                     before: dict[str, float]) -> pd.DataFrame:
    from .frequency import future_dates

    need = future_dates(last, freq, steps)
    if future is None or any(f not in future.columns for f in features):
        raise ValueError(f"the model needs future values of {', '.join(features)} for {need[0].date()} "
                         f"to {need[-1].date()}")
    x = future[["ds", *features]].drop_duplicates("ds").set_index("ds").reindex(need)
    gaps = x.index[x.isna().any(axis=1)]
    if len(gaps):
        raise ValueError(f"no future values of {', '.join(features)} for {len(gaps)} period(s) from "
                         f"{gaps[0].date()} (needed up to {need[-1].date()})")
    return _with_previous(x.rename_axis("ds").reset_index(), features, before).assign(unique_id="g")


def fit(kind: str, series: pd.DataFrame, features: list[str], plan: Plan, levels: list[int],
        trees: int = 100, seed: int = 0, params: dict | None = None) -> Forecaster:
    """The chosen model fitted on the whole series (what scores and serves)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind in STATS:
            from statsforecast import StatsForecast

            fitted = StatsForecast(models=[_stats_model(kind, plan.season_length)], freq=plan.freq, n_jobs=1)
            fitted.fit(long_frame(series, []))
            use = []
        else:
            fitted = mlforecast_model(plan, trees, seed, params)
            fitted.fit(long_frame(series, features), static_features=[], as_numpy=True, prediction_intervals=_intervals(plan))
            use = features
    last = {f: float(series[f].iloc[-1]) for f in use}
    return Forecaster(kind, fitted, plan, series.ds.iloc[-1], use, levels, last)


def candidates(models: list[str]) -> list[str]:
    """The configured models with the baseline first (always a candidate, always measured)."""
    return [BASELINE, *[m for m in dict.fromkeys(models) if m != BASELINE]]


def as_float(x) -> float:
    return float(x) if x is not None and np.isfinite(x) else float("nan")
