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

import copy
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..trees import Trees
from .frequency import Plan, future_dates

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
QUICK_STEPS = 14  # see Forecaster.quick


def date_features(dates: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """The calendar columns the recursion reads (``RecursiveBoost.order_of``: "date"), pandas' own values."""
    return {"dayofweek": dates.dayofweek.to_numpy(), "month": dates.month.to_numpy(), "quarter": dates.quarter.to_numpy()}


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
    """Rolling-origin backtest: ``plan.windows`` windows of ``plan.horizon`` periods.
    Returns ds, cutoff, y, mean, lo_L, hi_L (one row per backtest period).

    The XGBoost candidate is refitted before each window (``BoostRun``, which train uses, gives the
    same rows with the fits it shares with the refit done once). A statistical one is fitted once, at the
    first origin, and that fit is forwarded to the later origins (its parameters re-filtered over the
    longer history: statsforecast's ``refit=False``): AutoETS chooses among ~15 forms per fit, and a
    refit per window repeated that choice (0.54 of a 730-day group's 1.2 s before, bench/README.md).
    The winner's refit on the whole series still makes the whole choice again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind in STATS:
            from statsforecast import StatsForecast

            sf = StatsForecast(models=[_stats_model(kind, plan.season_length)], freq=plan.freq, n_jobs=1)
            cv = sf.cross_validation(h=plan.horizon, df=long_frame(series, []), n_windows=plan.windows,
                                     step_size=plan.horizon, level=levels, refit=False)
        else:
            mlf = mlforecast_model(plan, trees, seed, params)
            cv = mlf.cross_validation(long_frame(series, features), n_windows=plan.windows, h=plan.horizon,
                                      step_size=plan.horizon, static_features=[], as_numpy=True,
                                      prediction_intervals=_intervals(plan), level=levels)
    return _rename(cv, kind, levels)


def rounds(model) -> tuple[int, int]:
    """The iteration range an XGBRegressor predicts with (up to its best iteration if early-stopped)."""
    best = getattr(model, "best_iteration", None)
    return (0, best + 1 if best is not None else model.get_booster().num_boosted_rounds())


class RecursiveBoost:
    """mlforecast's recursive predict of our XGBoost candidate (``mlforecast_model``), without pandas.

    ``MLForecast.predict`` rebuilds each step's feature row through pandas (~1 ms a step, ~90 % of a
    forecast's cost, measured by bench/serving.py); here a step is one row of Python floats and one
    prediction (``trees.Trees``, or ``inplace_predict`` where the trees are not known): the exogenous features (with their ``__prev``), lags of the differenced
    target, its rolling mean, the calendar features, in the booster's column order; then the
    differences undone and the conformal intervals (``conformal_distribution``) as mlforecast
    computes them. :meth:`of` returns None for a fitted model it does not know part by part (the
    library then predicts); workloads/tests/test_forecast_recursive.py checks both agree on several groups."""

    def __init__(self, booster, iteration_range, order: list[tuple[str, Any]], history: np.ndarray, tail: float,
                 scores: np.ndarray | None, levels: list[int]):
        self.booster, self.iteration_range, self.order = booster, iteration_range, order
        self.history, self.tail, self.levels = history, tail, list(levels)
        self.offsets = self._offsets(scores, self.levels)
        # The trees walked in Python (trees.Trees): ~5x cheaper than inplace_predict for one row.
        width = len(order)
        probe = np.vstack([np.zeros(width), np.full(width, np.nan), np.linspace(-3, 3, width)])
        self.trees = Trees.checked(booster, iteration_range, probe)

    @classmethod
    def of(cls, mlf, features: list[str], levels: list[int]) -> "RecursiveBoost | None":
        try:
            from xgboost import XGBRegressor

            model = mlf.models_.get("xgboost") if len(mlf.models_) == 1 else None
            order = cls.order_of(mlf, features)
            if not isinstance(model, XGBRegressor) or order is None:
                return None
            history = np.asarray(mlf.ts.ga.data, dtype=float)
            if not cls.enough(order, history):
                return None
            scores = None
            if mlf._cs_df is not None and levels:
                pi = mlf.prediction_intervals
                if pi.method != "conformal_distribution":
                    return None
                scores = mlf._cs_df["xgboost"].to_numpy(float).reshape(pi.n_windows, 1, pi.h)
            return cls(model.get_booster(), rounds(model), order, history,
                       float(mlf.ts.target_transforms[0].scalers_[0].tails_[0]), scores, levels)
        except (AttributeError, KeyError, TypeError, ValueError, ImportError, IndexError):
            return None

    @staticmethod
    def order_of(mlf, features: list[str]) -> list[tuple[str, Any]] | None:
        """Where each of the booster's columns comes from (("lag", k), ("rolling_mean", window),
        ("date", name), ("exog", index)), for one series with ``Differences([1])``; None for anything else."""
        try:
            from mlforecast.lag_transforms import RollingMean
            from mlforecast.target_transforms import Differences

            ts = mlf.ts
            tts = ts.target_transforms or []
            if (len(tts) != 1 or not isinstance(tts[0], Differences) or tts[0].differences != [1]
                    or len(ts.ga.indptr) != 2 or ts.static_features_.shape[1] != 1):
                return None
            exog = [*features, *(f + PREV for f in features)]
            order: list[tuple[str, Any]] = []
            for name in ts.features_order_:
                tfm = ts.transforms.get(name)
                if name in exog:
                    order.append(("exog", exog.index(name)))
                elif type(tfm).__name__ == "Lag":
                    order.append(("lag", tfm.lag))
                elif (isinstance(tfm, RollingMean) and tfm.min_samples in (None, tfm.window_size)
                      and name == f"rolling_mean_lag1_window_size{tfm.window_size}" and not tfm.global_
                      and tfm.groupby is None):
                    order.append(("rolling_mean", tfm.window_size))
                elif name in ts.date_features and name in ("dayofweek", "month", "quarter"):
                    order.append(("date", name))
                else:
                    return None
            return order
        except (AttributeError, KeyError, TypeError, ValueError, ImportError, IndexError):
            return None

    @staticmethod
    def lookback(order: list[tuple[str, Any]]) -> int:
        """How many of the last differenced values a step reads (its longest lag or rolling mean)."""
        return max([k for kind, k in order if kind in ("lag", "rolling_mean")], default=0)

    @staticmethod
    def enough(order: list[tuple[str, Any]], history: np.ndarray) -> bool:
        """True when the last values the lags and rolling mean read are there (not missing)."""
        need = RecursiveBoost.lookback(order)
        return len(history) >= need and not np.isnan(history[len(history) - need:]).any()

    def at(self, history: np.ndarray, tail: float) -> "RecursiveBoost":
        """The same trees forecasting after another history (``tail``: its last undifferenced value)."""
        other = copy.copy(self)
        other.history, other.tail = history, tail
        return other

    def predict(self, calendar: dict[str, np.ndarray], exog: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
        """Periods 1 to ``n`` after the history. ``calendar``: each date feature over those periods (or
        more); ``exog``: (n, 2 x features) values of the features then their previous period's.
        {"mean", "lo_L", "hi_L"}: arrays of n values."""
        # Python lists, not numpy: a step is a dozen scalars, where numpy's per-call cost dominates.
        y = self.history.tolist()
        at = len(y)
        x = exog.tolist() if exog is not None else None
        cal = {k: calendar[k].tolist() for _, k in self.order if isinstance(k, str)}
        for step in range(n):
            t = at + step
            row = []
            for kind, k in self.order:
                if kind == "lag":
                    row.append(y[t - k])
                elif kind == "rolling_mean":
                    row.append(sum(y[t - k:t]) / k)
                elif kind == "date":
                    row.append(cal[k][step])
                else:
                    row.append(x[step][k])
            y.append(self.trees.predict(row) if self.trees is not None
                     else float(self.booster.inplace_predict(np.array([row]), iteration_range=self.iteration_range)[0]))
        y = np.asarray(y)
        mean = self.tail + np.cumsum(y[at:])
        out = {"mean": mean}
        if self.offsets is not None:
            out.update({band: mean + offset[:n] for band, offset in self.offsets.items()})
        return out

    @staticmethod
    def _offsets(scores: np.ndarray | None, levels: list[int]) -> dict[str, np.ndarray] | None:
        """mlforecast's conformal_distribution bands are quantiles of mean -/+ each window's score, per
        step; a quantile moves with the mean, so they are mean + these offsets (computed once)."""
        if scores is None:
            return None
        level = sorted(levels)
        cuts = [(100 - lv) / 200 for lv in reversed(level)] + [1 - (100 - lv) / 200 for lv in level]
        q = np.quantile(np.vstack([-scores, scores]), cuts, axis=0).reshape(len(cuts), -1)
        bands = dict(zip([f"lo_{lv}" for lv in reversed(level)] + [f"hi_{lv}" for lv in level], q))
        return {b: bands[b] for b in (*(f"lo_{lv}" for lv in levels), *(f"hi_{lv}" for lv in levels))}


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

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_recursive", "_dates")}  # rebuilt on first use

    @property
    def recursive(self) -> RecursiveBoost | None:
        """The numpy predictor of an XGBoost model (None: the library predicts), built once."""
        if self.kind in STATS:
            return None
        if "_recursive" not in self.__dict__:
            self._recursive = RecursiveBoost.of(self.fitted, self.features, self.levels)
        return self._recursive

    def forecast(self, steps: int, future: pd.DataFrame | None = None) -> pd.DataFrame:
        """The next ``steps`` periods: ds, mean, lo_L, hi_L. ``future``: ds + the features for those
        periods (only models that use features need it; ValueError naming what is missing)."""
        if not 1 <= steps <= self.max_steps:
            raise ValueError(f"can forecast 1 to {self.max_steps} periods after {self.last.date()}, not {steps}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.kind in STATS:
                return _rename(self.fitted.predict(h=steps, level=self.levels), self.kind, self.levels)
            x = None
            if self.features:
                x = _future_features(future, self.last, self.freq, steps, self.features, self.last_features)
            if self.recursive is not None:
                exog = x[[*self.features, *(f + PREV for f in self.features)]].to_numpy(float) if x is not None else None
                return self._frame(self.steps(steps, exog))
            out = self.fitted.predict(h=steps, level=self.levels, X_df=x)
        return _rename(out, self.kind, self.levels)

    def steps(self, steps: int, exog: np.ndarray | None) -> dict[str, np.ndarray]:
        """The next ``steps`` periods as arrays ({"mean", "lo_L", "hi_L"}): the fast path of an XGBoost
        model (``recursive``), given its features' values then their previous period's, per period."""
        if self.recursive is not None:
            return self.recursive.predict(self._calendar(), exog, steps)
        x = None
        if exog is not None:
            x = pd.DataFrame(exog, columns=[*self.features, *(f + PREV for f in self.features)]).assign(
                ds=future_dates(self.last, self.freq, steps), unique_id="g")
        return {c: v.to_numpy(float) for c, v in self._library(steps, x).items() if c != "ds"}

    def _calendar(self) -> dict[str, np.ndarray]:
        """The date features of the horizon's periods (pandas' own values), computed once."""
        if "_dates" not in self.__dict__:
            self._dates = date_features(future_dates(self.last, self.freq, self.max_steps))
        return self._dates

    def _library(self, steps: int, x: pd.DataFrame | None) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _rename(self.fitted.predict(h=steps, level=self.levels, X_df=x), self.kind, self.levels)

    def _frame(self, arrays: dict[str, np.ndarray]) -> pd.DataFrame:
        n = len(arrays["mean"])
        return pd.DataFrame({"ds": future_dates(self.last, self.freq, n), **arrays})

    @property
    def quick(self) -> bool:
        """True once the numpy predictor is built and the horizon is short (a forecast with features
        then takes well under a millisecond: the scoring service answers it on the event loop)."""
        return self.__dict__.get("_recursive") is not None and self.max_steps <= QUICK_STEPS

    def exog(self, values: np.ndarray) -> np.ndarray:
        """Per period 1..n the features' values (``values``: n x features) then their previous period's."""
        before = np.array([[self.last_features[f] for f in self.features]], dtype=float)
        return np.hstack([values, np.vstack([before, values[:-1]])])


def no_future_values(features: list[str], gaps, up_to) -> str:
    """The message for periods of the horizon without feature values (``gaps``: their dates)."""
    return (f"no future values of {', '.join(features)} for {len(gaps)} period(s) from {gaps[0].date()} "
            f"(needed up to {up_to.date()})")


def _future_features(future: pd.DataFrame | None, last, freq: str, steps: int, features: list[str],
                     before: dict[str, float]) -> pd.DataFrame:
    need = future_dates(last, freq, steps)
    if future is None or any(f not in future.columns for f in features):
        raise ValueError(f"the model needs future values of {', '.join(features)} for {need[0].date()} "
                         f"to {need[-1].date()}")
    x = future[["ds", *features]].drop_duplicates("ds").set_index("ds").reindex(need)
    gaps = x.index[x.isna().any(axis=1)]
    if len(gaps):
        raise ValueError(no_future_values(features, gaps, need[-1]))
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


def _one_thread():
    """XGBoost's global thread count at 1 (the model's ``n_jobs`` already is): its DMatrix otherwise
    copies the label on every core, ~2 ms a fit on a busy 2-core machine, for the same values."""
    import xgboost as xgb

    return xgb.config_context(nthread=1)


class BoostRun:
    """One group's XGBoost candidate: its backtest and its refit, sharing their fits; the same numbers
    as ``backtest("xgboost", ...)`` and ``fit("xgboost", ...)`` (workloads/tests/test_forecast_fast_backtest.py).

    What mlforecast does there: each backtest window (cutoff c) fits at c and, for its conformal scores
    (``PredictionIntervals(n_windows=w, h)``: a cross-validation with ``refit=False``), once more at
    c - w*h, forecasting h periods from c - w*h, c - (w-1)*h, ..., c - h with that fit; the refit does the
    same at the series' end T. The cutoffs being h apart, most of those fits coincide (3 windows, w=2: 6
    distinct fits, not 12). Here the group's feature matrix is built once (mlforecast's own preprocess of
    the whole series: lags and rolling mean of the differenced target, calendar and exogenous features
    are all causal, so the rows up to a cutoff are the rows a fit cut there would build), each distinct
    fit runs once (``clone(model).fit`` on those rows, as ``MLForecast.fit_models``), every forecast is
    ``RecursiveBoost``'s replay of mlforecast's recursion, and the scores and bands are computed as
    mlforecast does (absolute errors per window and step; ``conformal_distribution``). The refit is
    mlforecast's preprocess + fit_models of the whole series with the conformal state that
    ``fit(prediction_intervals=...)`` leaves (``prediction_intervals``, ``_cs_df``, ``cv_models_``), so
    serving, scoring and the bundle treat it as before.

    Falls back to the library path (``backtest`` / ``fit``, which also raise the library's errors) when
    it cannot replicate: a feature set or transform ``RecursiveBoost.order_of`` does not know, feature
    rows that are not one block ending at the series' end (missing exogenous values), or a series too
    short for a fit or for the conformal windows. ``fast`` says which path runs.
    """

    def __init__(self, series: pd.DataFrame, features: list[str], plan: Plan, levels: list[int],
                 trees: int = 100, seed: int = 0, params: dict | None = None):
        self.series, self.features, self.plan, self.levels = series, list(features), plan, list(levels)
        self.trees, self.seed, self.params = trees, seed, params
        self.windows = _intervals(plan).n_windows
        self._fits: dict[int, Any] = {}  # periods fitted on -> the fitted XGBRegressor
        self._known: dict[tuple[int, int], np.ndarray] = {}  # (fitted on, origin) -> the forecast's mean
        self.fast = self._prepare()

    def _prepare(self) -> bool:
        self.mlf = mlforecast_model(self.plan, self.trees, self.seed, self.params)
        frame = long_frame(self.series, self.features)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prep = self.mlf.preprocess(frame, static_features=[], dropna=True, as_numpy=True)
        except ValueError:
            return False
        self.order = RecursiveBoost.order_of(self.mlf, self.features)
        n, h, k = len(self.series), self.plan.horizon, len(prep)
        ds = pd.DatetimeIndex(self.series.ds)
        if self.order is None or k == 0 or not (pd.DatetimeIndex(prep.ds) == ds[n - k:]).all():
            return False
        self.first = n - k  # the period of the first feature row (the earlier ones lack lags)
        self.origins = [n - (self.plan.windows - i) * h for i in range(self.plan.windows)]  # backtest cutoffs
        earliest = self.origins[0] - self.windows * h
        if earliest - self.first < 1 or self.origins[0] < self.windows * h + 1:
            return False  # mlforecast fails here (no rows to fit; too short for the conformal windows)
        self.x = np.ascontiguousarray(prep[self.mlf.ts.features_order_].to_numpy(float))
        self.target = prep["y"].to_numpy(float)  # the differenced target of those rows
        self.diff = np.concatenate([np.full(self.first, np.nan), self.target])
        if not RecursiveBoost.enough(self.order, self.diff[:earliest]):
            return False
        self.ds, self.y = ds, self.series.y.to_numpy(float)
        self.calendar = date_features(ds)
        self.exog = (frame[[*self.features, *(f + PREV for f in self.features)]].to_numpy(float)
                     if self.features else None)
        return True

    def _fit(self, periods: int):
        """The candidate fitted on the series' first ``periods`` periods (once per run)."""
        if periods not in self._fits:
            from sklearn.base import clone

            rows = periods - self.first
            with _one_thread():
                self._fits[periods] = clone(self.mlf.models["xgboost"]).fit(self.x[:rows], self.target[:rows])
        return self._fits[periods]

    def _requests(self, end: int) -> list[tuple[int, int]]:
        """(fitted on the first p periods, forecast from origin o) pairs for the conformal scores of a fit
        on the first ``end`` periods: the windows before ``end``, all forecast by the fit at the first."""
        h = self.plan.horizon
        start = end - self.windows * h
        return [(start, o) for o in range(start, end, h)]

    def _means(self, requests: list[tuple[int, int]]) -> None:
        """Forecast what ``requests`` asks and is not yet known (``_known``): the origins of one fit
        together, a matrix of rows a step (the trees see the same float32 rows as in mlforecast's
        recursion; sums in the same order as ``RecursiveBoost.predict``)."""
        todo: dict[int, list[int]] = {}
        for fitted_on, origin in dict.fromkeys(requests):
            if (fitted_on, origin) not in self._known:
                todo.setdefault(fitted_on, []).append(origin)
        h = self.plan.horizon
        need = RecursiveBoost.lookback(self.order)
        for fitted_on, origins in todo.items():
            model = self._fit(fitted_on)
            booster, iterations = model.get_booster(), rounds(model)
            at = np.asarray(origins)
            y = np.empty((need + h, len(at)))  # time x origin: the differenced target, then its forecasts
            for j, o in enumerate(origins):
                y[:need, j] = self.diff[o - need:o]
            x = np.empty((len(at), len(self.order)))
            for step in range(h):
                t = need + step
                for c, (kind, k) in enumerate(self.order):
                    if kind == "lag":
                        x[:, c] = y[t - k]
                    elif kind == "rolling_mean":  # accumulate: left to right, as Python's sum
                        x[:, c] = np.add.accumulate(y[t - k:t], axis=0)[-1] / k
                    elif kind == "date":
                        x[:, c] = self.calendar[k][at + step]
                    else:
                        x[:, c] = self.exog[at + step, k]
                y[t] = booster.inplace_predict(x, iteration_range=iterations)
            steps = np.cumsum(y[need:].T, axis=1)
            for j, o in enumerate(origins):
                self._known[(fitted_on, o)] = self.y[o - 1] + steps[j]

    def _scores(self, end: int) -> np.ndarray:
        """The conformal scores of a fit on the first ``end`` periods: (windows, horizon) absolute errors."""
        h = self.plan.horizon
        self._means(self._requests(end))
        return np.vstack([np.abs(self._known[r] - self.y[r[1]:r[1] + h]) for r in self._requests(end)])

    def backtest(self) -> pd.DataFrame:
        """``backtest("xgboost", ...)``: ds, cutoff, y, mean, lo_L, hi_L."""
        if not self.fast:
            return backtest("xgboost", self.series, self.features, self.plan, self.levels, self.trees, self.seed,
                            self.params)
        h, n, parts = self.plan.horizon, len(self.series), []
        # every forecast the windows need, and those the refit's scores need (the same fits: nearly free)
        self._means([*[r for end in self.origins for r in [(end, end), *self._requests(end)]], *self._requests(n)])
        for origin in self.origins:
            mean = self._known[(origin, origin)]
            offsets = RecursiveBoost._offsets(self._scores(origin)[:, None, :], self.levels) if self.levels else {}
            parts.append(pd.DataFrame({"ds": self.ds[origin:origin + h], "cutoff": self.ds[origin - 1],
                                       "y": self.y[origin:origin + h], "mean": mean,
                                       **{band: mean + offset for band, offset in offsets.items()}}))
        return pd.concat(parts, ignore_index=True)

    def fit(self) -> Forecaster:
        """``fit("xgboost", ...)``: the candidate refitted on the whole series, intervals calibrated."""
        if not self.fast:
            return fit("xgboost", self.series, self.features, self.plan, self.levels, self.trees, self.seed,
                       self.params)
        n, h = len(self.series), self.plan.horizon
        scores = self._scores(n)
        mlf = self.mlf  # after preprocess of the whole series: what MLForecast.fit leaves, plus the models
        mlf._cs_source_scales_ = None
        mlf.prediction_intervals = _intervals(self.plan)
        starts = range(n - self.windows * h, n, h)
        mlf._cs_df = pd.DataFrame({
            "unique_id": "g", "ds": np.concatenate([self.ds[o:o + h] for o in starts]),
            "cutoff": np.repeat([self.ds[o - 1] for o in starts], h), "xgboost": scores.reshape(-1)})
        mlf.cv_models_ = [{"xgboost": self._fit(n - self.windows * h)}]
        mlf.cv_fitted_values_ = []
        with _one_thread():
            mlf.fit_models(self.x, self.target)
        last = {f: float(self.series[f].iloc[-1]) for f in self.features}
        return Forecaster("xgboost", mlf, self.plan, self.series.ds.iloc[-1], self.features, self.levels, last)


def candidates(models: list[str]) -> list[str]:
    """The configured models with the baseline first (always a candidate, always measured)."""
    return [BASELINE, *[m for m in dict.fromkeys(models) if m != BASELINE]]


def as_float(x) -> float:
    return float(x) if x is not None and np.isfinite(x) else float("nan")
