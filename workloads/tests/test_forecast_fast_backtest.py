"""The XGBoost candidate's shared-fit backtest and refit (models.BoostRun) against mlforecast's own path
(models.backtest / models.fit: cross_validation and fit with conformal intervals): the same backtest
rows, conformal scores and refit forecasts (numpy and library paths) on several groups, frequencies,
feature sets and parameters; the fallback to the library for a model it does not know."""

from __future__ import annotations

import warnings

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from test_forecast_recursive import _series

from mlkit_workloads.data.synthetic import sales
from mlkit_workloads.forecast import models
from mlkit_workloads.forecast.frequency import Plan, future_dates
from mlkit_workloads.forecast.models import BoostRun, _future_features
from mlkit_workloads.forecast.series import prepare

LEVELS = [80, 95]
TUNED = {"max_depth": 6, "learning_rate": 0.15, "min_child_weight": 2.5, "subsample": 0.7, "reg_lambda": 0.3}
FEATURES = ["promo", "holiday"]


def _store_item(days: int) -> pd.DataFrame:
    """One store x item group of the synthetic data (its promotion and holiday features)."""
    df = sales(1, 2, days, 11, broken=False)
    return prepare(df[df["item"] == df["item"].iloc[0]], "date", "sales", FEATURES, "D").frame


def _close(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-9)


CASES = [  # id, series, features, plan, trees, params
    ("daily-store-item", lambda: _store_item(730), FEATURES, Plan("D", "daily", 7, 28, 3, 56), 60, TUNED),
    ("daily-no-features", lambda: _series("D", 260, 1, 80.0, False), [], Plan("D", "daily", 7, 14, 3, 14), 40, None),
    ("weekly", lambda: _series("W-MON", 170, 3, 20.0, False), [], Plan("W-MON", "weekly", 52, 8, 2, 104), 30,
     {**TUNED, "subsample": 0.8, "max_depth": 3}),
    ("monthly-features", lambda: _series("MS", 84, 4, 500.0, True), FEATURES, Plan("MS", "monthly", 12, 6, 3, 24), 30,
     TUNED),
    # near the shortest series the fast path takes: the first conformal fit has a few feature rows
    ("daily-short", lambda: _series("D", 52, 2, 3.0, True), FEATURES, Plan("D", "daily", 7, 7, 3, 14), 20, TUNED),
]


@pytest.mark.parametrize("series, features, plan, trees, params", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_shared_fits_give_mlforecasts_backtest_and_refit(series, features, plan, trees, params):
    s = series()
    run = BoostRun(s, features, plan, LEVELS, trees, 5, params)
    assert run.fast, "the fast path must be taken for the candidate mlforecast_model builds"
    library = models.backtest("xgboost", s, features, plan, LEVELS, trees, 5, params)
    fast = run.backtest()
    assert list(fast.columns) == list(library.columns) == ["ds", "cutoff", "y", "mean", "lo_80", "lo_95",
                                                            "hi_80", "hi_95"]
    assert len(fast) == len(library) == plan.windows * plan.horizon
    assert (fast.ds.to_numpy() == library.ds.to_numpy()).all()
    assert (fast.cutoff.to_numpy() == library.cutoff.to_numpy()).all()
    _close(fast.drop(columns=["ds", "cutoff"]), library.drop(columns=["ds", "cutoff"]))
    assert (fast.hi_95 > fast.lo_95).any()  # real bands, not collapsed ones

    old = models.fit("xgboost", s, features, plan, LEVELS, trees, 5, params)
    new = run.fit()
    # every distinct fit once: the windows' cutoffs and the conformal fits before them (the refit's own is
    # mlforecast's fit_models): 3 windows -> 5 + 1, 2 windows -> 4 + 1
    assert len(run._fits) == plan.windows + 2
    cs_old, cs_new = old.fitted._cs_df, new.fitted._cs_df
    assert list(cs_new.columns) == list(cs_old.columns) and (cs_new.dtypes == cs_old.dtypes).all()
    assert (cs_new[["unique_id", "ds", "cutoff"]].to_numpy() == cs_old[["unique_id", "ds", "cutoff"]].to_numpy()).all()
    _close(cs_new.xgboost, cs_old.xgboost)
    assert set(vars(new.fitted)) == set(vars(old.fitted))  # the state fit(prediction_intervals=...) leaves
    # and the series' state, but the scratch of a predict (mlforecast's _predict_setup resets it each time)
    assert set(vars(new.fitted.ts)) == set(vars(old.fitted.ts)) - {"_h", "curr_dates", "test_dates", "y_pred"}
    np.testing.assert_array_equal(new.fitted.ts.ga.data, old.fitted.ts.ga.data)
    assert vars(new.fitted.prediction_intervals) == vars(old.fitted.prediction_intervals)
    assert [m["xgboost"].get_booster().save_raw("json") for m in new.fitted.cv_models_] == \
        [m["xgboost"].get_booster().save_raw("json") for m in old.fitted.cv_models_]
    assert new.fitted.models_["xgboost"].get_booster().save_raw("json") == \
        old.fitted.models_["xgboost"].get_booster().save_raw("json")

    new = cloudpickle.loads(cloudpickle.dumps(new))  # as the bundle holds it
    assert new.recursive is not None
    dates = future_dates(new.last, plan.freq, plan.horizon)
    rng = np.random.default_rng(3)
    future = pd.DataFrame({"ds": dates, **{f: rng.integers(0, 2, plan.horizon).astype(float) for f in FEATURES}})
    x = _future_features(future, new.last, plan.freq, plan.horizon, features, new.last_features) if features else None
    reference = old._library(plan.horizon, x)  # mlforecast's predict after its own fit with intervals
    for out in (new.forecast(plan.horizon, future if features else None), new._library(plan.horizon, x)):
        assert list(out.columns) == list(reference.columns)
        assert (out.ds.to_numpy() == reference.ds.to_numpy()).all()
        _close(out.drop(columns="ds"), reference.drop(columns="ds"))


def test_rows_up_to_a_cutoff_are_those_of_the_series_cut_there():
    """Why one feature matrix serves every fit: mlforecast's rows (lags and rolling mean of the
    differenced target, calendar, exogenous) for the series cut at any period are the first rows of
    the whole series' matrix, bit for bit."""
    s = _store_item(400)
    frame = models.long_frame(s, FEATURES)
    plan = Plan("D", "daily", 7, 28, 3, 56)

    def rows(df):
        mlf = models.mlforecast_model(plan, 1, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, y = mlf.preprocess(df, static_features=[], dropna=True, return_X_y=True, as_numpy=True)
        return x, y

    whole_x, whole_y = rows(frame)
    for cut in (30, 200, 371):
        x, y = rows(frame.iloc[:cut])
        assert len(x) > 0 and np.array_equal(x, whole_x[:len(x)]) and np.array_equal(y, whole_y[:len(y)])
        assert len(whole_x) - len(x) == len(frame) - cut  # dropped rows are only at the start


def test_a_model_it_does_not_know_takes_the_library_path(monkeypatch):
    from mlforecast.lag_transforms import ExpandingMean

    build = models.mlforecast_model

    def with_expanding_mean(plan, trees, seed, params=None):  # a lag transform RecursiveBoost does not replay
        mlf = build(plan, trees, seed, params)
        return type(mlf)(models=mlf.models, freq=plan.freq, lags=models.lags(plan.season_length),
                         lag_transforms={1: [ExpandingMean()]}, date_features=["dayofweek"],
                         target_transforms=[type(mlf.ts.target_transforms[0])([1])])

    monkeypatch.setattr(models, "mlforecast_model", with_expanding_mean)
    s, plan = _series("D", 120, 5, 10.0, True), Plan("D", "daily", 7, 7, 2, 14)
    run = BoostRun(s, FEATURES, plan, LEVELS, 10, 1, TUNED)
    assert not run.fast
    library = models.backtest("xgboost", s, FEATURES, plan, LEVELS, 10, 1, TUNED)
    pd.testing.assert_frame_equal(run.backtest(), library)
    model = run.fit()
    assert "expanding_mean_lag1" in model.fitted.ts.features_order_ and model.recursive is None
    future = pd.DataFrame({"ds": future_dates(model.last, "D", 3), "promo": [1.0, 0.0, 1.0], "holiday": 0.0})
    _close(model.forecast(3, future).drop(columns="ds"),
           models.fit("xgboost", s, FEATURES, plan, LEVELS, 10, 1, TUNED).forecast(3, future).drop(columns="ds"))


def test_series_too_short_for_the_fast_path_get_the_librarys_result_or_error():
    plan = Plan("D", "daily", 7, 7, 3, 14)
    # 40 periods: the first conformal fit (5 periods) has no feature row; mlforecast still answers
    s = _series("D", 40, 6, 5.0, False)
    run = BoostRun(s, [], plan, LEVELS, 10, 0)
    assert not run.fast
    pd.testing.assert_frame_equal(run.backtest(), models.backtest("xgboost", s, [], plan, LEVELS, 10, 0))
    # 30 periods: too short for the conformal windows; the same error as mlforecast's
    s = _series("D", 30, 6, 5.0, False)
    run = BoostRun(s, [], plan, LEVELS, 10, 0)
    assert not run.fast
    with pytest.raises(ValueError) as fast:
        run.backtest()
    with pytest.raises(ValueError) as library:
        models.backtest("xgboost", s, [], plan, LEVELS, 10, 0)
    assert "Minimum required samples" in str(fast.value) and str(fast.value) == str(library.value)
