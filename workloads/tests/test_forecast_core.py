"""The forecast job's pure core: frequency, series preparation, horizon dates, backtest windows,
interval coverage, the winner per group, the meta model forecasting future dates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlkit_workloads.forecast.features import make_features
from mlkit_workloads.forecast.frequency import family, future_dates, infer_frequency, off_grid, plan, steps_ahead
from mlkit_workloads.forecast.meta_model import CODEC, FORECASTER, GroupModels, compress, write_bundle
from mlkit_workloads.forecast.metrics import backtest_cutoffs, coverage, seasonal_scale
from mlkit_workloads.forecast.models import backtest
from mlkit_workloads.forecast.series import SeriesProblem, prepare
from mlkit_workloads.forecast.train import SEARCH_FIELDS, metric_names, train_group
from mlkit_workloads.forecast.tuning import DEFAULT, feature_matrix, split, tune, tuning_history, xgb_params
from mlkit_workloads.settings import Forecast
from mlkit_workloads.train_many import no_group_trained

MONTHLY = Forecast.model_validate({"columns": {"group_keys": ["region"], "timestamp": "month", "target": "value",
                                               "features": []},
                                   "models": ["auto_ets", "xgboost"], "search": {"max_rounds": 30}})


def monthly_series(n: int = 180, shift_at: int | None = None, shift: float = 1.0, seed: int = 0, trend: float = 0.002,
                   start: str = "2005-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 100 * (1 + trend * t) * (1 + 0.15 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 2, n)
    if shift_at is not None:
        y[shift_at:] *= shift
    return pd.DataFrame({"region": "R1", "month": pd.date_range(start, periods=n, freq="MS", tz="UTC"), "value": y})


# ------------------------------------------------------------------ frequency


@pytest.mark.parametrize("freq, expected", [("D", "D"), ("W", "W"), ("W-MON", "W-MON"), ("MS", "MS"),
                                            ("ME", "ME"), ("QS", "QS"), ("YS", "YS")])
def test_infer_frequency_with_gaps_and_series_starting_apart(freq, expected):
    n = 60 if freq == "YS" else 400
    a = pd.date_range("1900-01-01", periods=n, freq=freq)
    b = pd.date_range(a[n // 2], periods=n // 3, freq=freq)  # a second series starting much later
    stamps = pd.Series(a.delete([10, 11, 50]).append(b))  # gaps: missing periods
    assert infer_frequency(stamps) == expected
    assert infer_frequency(stamps.dt.tz_localize("UTC")) == expected


def test_infer_frequency_says_why_it_cannot():
    with pytest.raises(ValueError, match="not all on one .* grid"):
        infer_frequency(pd.Series(pd.to_datetime(["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-20", "2024-03-01"])))
    with pytest.raises(ValueError, match="from 2 distinct timestamp"):
        infer_frequency(pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01"])))


def test_plan_defaults_follow_the_frequency_and_are_checked_against_it():
    base = Forecast()
    sizes = {f: (p.season_length, p.horizon) for f in ("D", "W", "MS", "QS") for p in [plan(base, f)]}
    assert sizes == {"D": (7, 28), "W": (52, 13), "MS": (12, 12), "QS": (4, 8)}
    assert plan(base, "MS").min_periods == 24 + 3 * 12  # two seasons to train on + 3 windows of 12
    with pytest.raises(ValueError, match="season_length 7 does not fit monthly data"):
        plan(Forecast(season_length=7), "MS")
    with pytest.raises(ValidationError, match="season_length 7 does not fit monthly data"):
        Forecast.model_validate({"frequency": "MS", "season_length": 7})
    with pytest.raises(ValidationError, match="not a pandas offset alias"):
        Forecast.model_validate({"frequency": "monthly-ish"})
    with pytest.raises(ValueError, match="not supported"):
        family("h")


def test_horizon_dates_and_steps_ahead():
    last = pd.Timestamp("2024-11-01")
    assert list(future_dates(last, "MS", 3).strftime("%Y-%m-%d")) == ["2024-12-01", "2025-01-01", "2025-02-01"]
    dates = pd.DatetimeIndex(["2024-12-01", "2025-02-01", "2024-11-01", "2024-12-15"])
    assert list(steps_ahead(last, dates, "MS")) == [1, 3, 0, -1]  # past -> 0, off the grid -> -1
    assert list(off_grid(pd.DatetimeIndex(["2024-01-01", "2024-01-31 00:00", "2024-02-01 06:00"]), "MS").day) == [31, 1]


# ------------------------------------------------------------------ series as they come


def test_prepare_trims_leading_and_trailing_missing_then_fills_gaps():
    df = monthly_series(60)
    df.loc[:9, "value"] = np.nan  # before the series begins
    df.loc[55:, "value"] = np.nan  # after it ends
    df.loc[30, "value"] = np.nan  # an empty value inside
    df = df.drop(index=[40])  # a missing row inside
    s = prepare(df, "month", "value", [], "MS", fill="interpolate", max_missing_share=0.2)
    assert (s.frame.ds.iloc[0], s.last) == (pd.Timestamp("2005-11-01"), pd.Timestamp("2009-07-01"))
    assert len(s.frame) == 45 and s.filled == 2 and s.trimmed == 15  # 10 before the start, 5 after the end
    assert s.frame.y.notna().all()
    y = df.set_index(df.month.dt.tz_localize(None)).value
    assert s.frame.set_index("ds").y[pd.Timestamp("2007-07-01")] == pytest.approx(
        (y[pd.Timestamp("2007-06-01")] + y[pd.Timestamp("2007-08-01")]) / 2)
    zero = prepare(df, "month", "value", [], "MS", fill="zero")
    assert zero.frame.set_index("ds").y[pd.Timestamp("2008-05-01")] == 0.0
    fwd = prepare(df, "month", "value", [], "MS", fill="forward")
    assert fwd.frame.set_index("ds").y[pd.Timestamp("2008-05-01")] == y[pd.Timestamp("2008-04-01")]


def test_prepare_names_the_problem():
    df = monthly_series(60)
    holes = df.copy()
    holes.loc[10:25, "value"] = np.nan
    with pytest.raises(SeriesProblem) as e:
        prepare(holes, "month", "value", [], "MS", max_missing_share=0.2)
    assert e.value.status == "skipped" and "27% of the 60 periods" in e.value.reason and "max 20%" in e.value.reason
    with pytest.raises(SeriesProblem) as e:
        prepare(pd.concat([df, df.iloc[[3]]]), "month", "value", [], "MS")
    assert e.value.status == "failed" and e.value.reason == "duplicated timestamps: 2005-04-01"
    off = df.assign(month=df.month.where(df.index != 7, pd.Timestamp("2005-08-15", tz="UTC")))
    with pytest.raises(SeriesProblem) as e:
        prepare(off, "month", "value", [], "MS")
    assert e.value.reason == "1 timestamp(s) not on the MS grid: 2005-08-15"



def test_history_kept_is_the_last_periods_of_the_grid_from_a_value():
    df = monthly_series(200)
    df.loc[200 - 120, "value"] = np.nan  # the first period the cap would keep has no value
    df.loc[150, "value"] = np.nan  # a gap inside the kept history is still filled
    s = prepare(df, "month", "value", [], "MS", max_periods=120)
    assert len(s.frame) == 119 and s.older == 81 and s.filled == 1
    assert s.frame.ds.iloc[0] == pd.Timestamp(df.month.iloc[81].tz_localize(None)) and s.last == pd.Timestamp("2021-08-01")
    np.testing.assert_allclose(s.frame.y.iloc[-40:], df.value.iloc[-40:])  # after the gap at 150
    assert prepare(df, "month", "value", [], "MS").frame.shape[0] == 200  # no cap: every period
    # The missing share is judged on the history kept: old holes do not skip a series.
    holes = monthly_series(200)
    holes.loc[5:60, "value"] = np.nan
    with pytest.raises(SeriesProblem, match="of the 200 periods"):
        prepare(holes, "month", "value", [], "MS")
    assert len(prepare(holes, "month", "value", [], "MS", max_periods=120).frame) == 120


def test_history_kept_defaults_by_frequency_and_is_checked_against_the_plan():
    base = Forecast()
    assert {f: plan(base, f).max_periods for f in ("D", "W", "MS", "QS")} == {"D": 730, "W": 260, "MS": 120, "QS": 60}
    assert plan(Forecast(season_length=365), "D").max_periods == 2 * 365 + 3 * 28 + 365  # the plan's need + a season
    assert plan(Forecast(max_history_periods=400), "D").max_periods == 400
    with pytest.raises(ValueError, match="max_history_periods 60 is shorter than the 112 periods the plan needs"):
        plan(Forecast(max_history_periods=60), "D")
    res = train_group(monthly_series(200), MONTHLY, plan(MONTHLY, "MS"))  # 200 months, 120 kept
    assert res.status == "ok" and (res.n_rows, res.n_periods) == (200, 120), res.reason
    assert res.first_ts == "2011-09-01T00:00:00"


# ------------------------------------------------------------------ backtest, metrics, coverage


def test_backtest_windows_are_rolling_origins_of_one_horizon_each():
    df = monthly_series(120)
    p = plan(MONTHLY, "MS")
    s = prepare(df, "month", "value", [], "MS").frame
    cv = backtest("seasonal_naive", s, [], p, [80, 95])
    expected = backtest_cutoffs(s.ds.iloc[-1], "MS", 12, 3)
    assert list(expected.strftime("%Y-%m")) == ["2011-12", "2012-12", "2013-12"]
    assert sorted(cv.cutoff.unique()) == list(expected) and len(cv) == 36
    for cutoff, w in cv.groupby("cutoff"):
        assert list(w.ds) == list(future_dates(cutoff, "MS", 12))  # the 12 periods after each origin
    # The seasonal naive repeats the season before its origin: the library, with the right season.
    hist = s.set_index("ds").y
    first = cv[cv.cutoff == expected[0]]
    np.testing.assert_allclose(first["mean"], hist[expected[0] - pd.DateOffset(months=11):expected[0]].to_numpy())



@pytest.mark.parametrize("kind", ["auto_ets", "auto_theta"])
def test_a_statistical_candidate_is_fitted_at_the_first_origin_and_forwarded(kind):
    """One fit (one choice of form) at the first origin, its parameters run over each later origin's
    history: what statsforecast's forward gives for that fit, window by window."""
    from statsforecast.models import AutoETS, AutoTheta

    s = prepare(monthly_series(120, shift_at=100, shift=1.3), "month", "value", [], "MS").frame
    p = plan(MONTHLY, "MS")
    cv = backtest(kind, s, [], p, [80])
    y = s.y.to_numpy()
    first = len(y) - 3 * 12
    once = {"auto_ets": AutoETS, "auto_theta": AutoTheta}[kind](season_length=12).fit(y[:first])
    for w in range(3):
        got = cv.iloc[w * 12:(w + 1) * 12]
        want = once.forward(y=y[:first + w * 12], h=12, level=[80])
        np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-9)
        np.testing.assert_allclose(got["lo_80"], want["lo-80"], rtol=1e-9)
    refit_each = {"auto_ets": AutoETS, "auto_theta": AutoTheta}[kind](season_length=12).forecast(y=y[:first + 24], h=12)
    assert not np.allclose(cv["mean"].iloc[24:], refit_each["mean"], rtol=1e-6)  # not a refit per window

def test_coverage_and_scale_known_values():
    assert coverage(np.array([1.0, 2, 3, 4]), np.array([0.0, 2.5, 2, 0]), np.array([2.0, 3, 4, 3])) == 0.5
    assert seasonal_scale(np.array([1.0, 2, 3, 2, 3, 4]), 3) == pytest.approx(1.0)
    assert np.isnan(seasonal_scale(np.array([5.0, 5, 5, 5]), 2))


def test_interval_coverage_on_data_with_known_noise():
    """White noise around a seasonal level: the 80 % and 95 % intervals cover about that share."""
    rng = np.random.default_rng(42)
    n, season = 400, 12
    y = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / season) + rng.normal(0, 3.0, n)
    s = pd.DataFrame({"ds": pd.date_range("1980-01-01", periods=n, freq="MS"), "y": y})
    cfg = Forecast.model_validate({"horizon": 12, "backtest_windows": 10})
    cv = backtest("auto_ets", s, [], plan(cfg, "MS"), [80, 95])
    assert len(cv) == 120
    c80, c95 = coverage(cv.y, cv.lo_80, cv.hi_80), coverage(cv.y, cv.lo_95, cv.hi_95)
    assert 0.68 <= c80 <= 0.92 and 0.88 <= c95 <= 1.0 and c95 >= c80, (c80, c95)


# ------------------------------------------------------------------ the winner per group


def test_level_shift_in_the_last_year_is_followed_and_a_calendar_regression_is_not():
    import xgboost as xgb

    n, at = 180, 174  # +40 % for the last 6 months of the history
    df = monthly_series(n + 12, shift_at=at, shift=1.4, seed=1)
    history, truth = df.iloc[:n], df.iloc[n:]
    res = train_group(history, MONTHLY, plan(MONTHLY, "MS"))
    assert res.status == "ok" and res.model_type != "seasonal_naive", res.reason
    ours = res.model.forecast(12)["mean"].to_numpy()
    err = np.mean(np.abs(ours - truth.value.to_numpy()))
    # The calendar-only regression the job used to train: XGBoost on month/day-of-year/t features.
    x = make_features(history, "month", [])
    b = xgb.train({"max_depth": 4, "eta": 0.1, "nthread": 1}, xgb.DMatrix(x, label=history.value), 100)
    calendar = b.predict(xgb.DMatrix(make_features(truth, "month", [])))
    calendar_err = np.mean(np.abs(calendar - truth.value.to_numpy()))
    level = truth.value.mean()
    assert err < 0.08 * level, (err, level)
    assert calendar_err > 1.8 * err, (calendar_err, err)


def test_train_group_statuses_and_candidates():
    p = plan(MONTHLY, "MS")
    ok = train_group(monthly_series(120), MONTHLY, p)
    assert ok.status == "ok" and set(ok.candidates) == {"seasonal_naive", "auto_ets", "xgboost"}
    assert ok.metrics["mae"] == min(c["mae"] for c in ok.candidates.values())
    assert ok.metrics["mae"] < ok.metrics["baseline_mae"] and 0 <= ok.metrics["coverage_95"] <= 1
    assert len(ok.backtest) == 36 and ok.last_ts == "2014-12-01T00:00:00"
    row = ok.row(metric_names([80, 95]))
    assert set(metric_names([80, 95])) <= set(row) and json.loads(row["candidates"])["auto_ets"]["mae"] > 0
    assert {n for n, _ in SEARCH_FIELDS} <= set(row) and row["search_trials"] == MONTHLY.search.n_trials
    assert set(json.loads(row["search_params"])) == set(DEFAULT) and 1 <= row["search_best_iteration"] <= 30
    assert row["search_val_mae"] > 0
    short = train_group(monthly_series(40), MONTHLY, p)
    assert (short.status, short.reason) == ("skipped", "too few periods (40 < 60: 3 backtest windows of 12 + 24 "
                                                       "to train on)")
    assert train_group(monthly_series(120).assign(value=5.0), MONTHLY, p).reason == "constant target (nothing to learn)"
    broken = train_group(monthly_series(120).assign(month="not a date"), MONTHLY, p)
    assert broken.status == "failed" and broken.reason.startswith(("ValueError", "DateParseError"))


# ------------------------------------------------------------------ the XGBoost candidate's search


def budget(**kw):
    return Forecast.model_validate({"search": {"n_trials": 6, "max_rounds": 200, "early_stopping_rounds": 10,
                                               **kw}}).search


def validation_mae(params: dict, trees: int, s: pd.DataFrame, p) -> float:
    """An XGBoost with ``params`` and exactly ``trees`` trees (no early stopping) on the validation slice."""
    import xgboost as xgb

    x, y, ds = feature_matrix(tuning_history(s, p), [], p)
    (x_fit, y_fit), (x_val, y_val), _ = split(x, y, ds, p.horizon)
    booster = xgb.train(xgb_params(params, 0), xgb.DMatrix(x_fit, label=y_fit), trees)
    return float(np.mean(np.abs(booster.predict(xgb.DMatrix(x_val)) - y_val.to_numpy())))


def test_search_is_deterministic_for_a_seed():
    s, p = prepare(monthly_series(150), "month", "value", [], "MS").frame, plan(MONTHLY, "MS")
    a, b = tune(s, [], p, budget(), seed=3), tune(s, [], p, budget(), seed=3)
    assert (a.params, a.best_iteration, a.val_mae, a.trials) == (b.params, b.best_iteration, b.val_mae, b.trials)
    assert a.trials == 6 and set(a.params) == set(DEFAULT)


def test_early_stopping_stops_before_max_rounds_where_more_trees_overfit():
    """White noise around a constant level: after a few trees every extra tree fits noise."""
    rng = np.random.default_rng(5)
    n = 200
    df = pd.DataFrame({"region": "R1", "month": pd.date_range("1990-01-01", periods=n, freq="MS"),
                       "value": 100 + rng.normal(0, 5, n)})
    s, p = prepare(df, "month", "value", [], "MS").frame, plan(MONTHLY, "MS")
    t = tune(s, [], p, budget(n_trials=3, max_rounds=300))
    assert t.best_iteration + 10 < 300  # stopped: 10 rounds without improvement came long before the cap
    assert validation_mae(t.params, 300, s, p) > t.val_mae  # and the full 300 trees are worse: overfit


def test_tuned_candidate_is_at_least_as_good_as_the_untuned_default_on_validation():
    s, p = prepare(monthly_series(150, seed=2), "month", "value", [], "MS").frame, plan(MONTHLY, "MS")
    t = tune(s, [], p, budget(max_rounds=100))
    untuned = validation_mae(DEFAULT, 100, s, p)  # the candidate before the search: defaults, all trees
    assert t.val_mae <= untuned + 1e-9 and t.val_mae <= t.default_val_mae
    # The best params and iteration define the candidate: refitting them gives the search's score.
    assert validation_mae(t.params, t.best_iteration, s, p) == pytest.approx(t.val_mae, rel=1e-5)


def test_tuning_sees_no_backtest_period():
    s, p = prepare(monthly_series(150), "month", "value", [], "MS").frame, plan(MONTHLY, "MS")
    t = tune(s, [], p, budget(n_trials=3))
    first_origin = backtest_cutoffs(s.ds.iloc[-1], "MS", p.horizon, p.windows)[0]
    first_backtested = future_dates(first_origin, "MS", 1)[0]
    assert t.val_end == first_origin < first_backtested
    assert list(pd.date_range(t.val_start, t.val_end, freq="MS")) == list(future_dates(
        first_origin - pd.DateOffset(months=p.horizon), "MS", p.horizon))  # the last horizon periods before it
    # Proof by change: wreck every backtested value; the search's result does not move.
    wrecked = s.copy()
    wrecked.loc[wrecked.ds >= first_backtested, "y"] *= 10
    w = tune(wrecked, [], p, budget(n_trials=3))
    assert (w.params, w.best_iteration, w.val_mae) == (t.params, t.best_iteration, t.val_mae)


def test_a_failing_search_drops_only_the_xgboost_candidate():
    p = plan(MONTHLY, "MS")
    res = train_group(monthly_series(60), MONTHLY, p)  # long enough to backtest, too short to also tune
    assert res.status == "ok" and res.model_type in ("seasonal_naive", "auto_ets")
    assert res.candidates["xgboost"]["error"].startswith("search: ValueError: too few feature rows to tune on")
    row = res.row(metric_names([80, 95]))
    assert (row["search_trials"], row["search_params"], row["search_best_iteration"]) == (0, "", 0)


def test_no_group_trained_names_every_group_reason():
    results = pd.DataFrame({"region": ["R1", "R2"], "status": ["skipped", "failed"],
                            "reason": ["too few periods (3 < 60 ...)", "duplicated timestamps: 2020-01-01"]})
    msg = no_group_trained(results, ["region"])
    assert "no model version was registered" in msg
    assert "R1: skipped: too few periods" in msg and "R2: failed: duplicated timestamps: 2020-01-01" in msg


# ------------------------------------------------------------------ the meta model forecasts future dates


@pytest.fixture(scope="module")
def forecaster_bundle(tmp_path_factory):
    import cloudpickle

    p = plan(MONTHLY, "MS")
    groups = {("R1",): train_group(monthly_series(120, seed=1), MONTHLY, p),
              ("R2",): train_group(monthly_series(100, seed=2, start="2008-01-01"), MONTHLY, p)}
    spec = {"keys": ["region"], "timestamp": "month", "features": [], "levels": [80, 95], "lru_max_models": 1,
            **p.as_dict()}
    d = tmp_path_factory.mktemp("forecasters")

    def entries():
        for key, r in groups.items():
            raw = cloudpickle.dumps(r.model)
            yield key, compress(raw), {"status": "ok", "kind": FORECASTER, "model_type": r.model_type,
                                       "bytes": len(raw), "last_ts": r.last_ts}

    write_bundle(d, spec, entries(), packed=True, codec=CODEC)
    return d, groups


def test_meta_model_forecasts_the_periods_after_each_groups_history(forecaster_bundle):
    d, groups = forecaster_bundle
    m = GroupModels(d)
    req = pd.DataFrame({"region": ["R1", "R1", "R2", "R2", "R9"],
                        "month": pd.to_datetime(["2015-01-01", "2015-03-01", "2016-05-01", "2016-01-01", "2015-01-01"])})
    out = m.predict(req)
    full = m.forecast_group(("R1",))
    assert len(full) == 12 and full.ds.iloc[0] == pd.Timestamp("2015-01-01")
    assert (full.lo_95 <= full.lo_80).all() and (full.lo_80 <= full["mean"]).all() and (full["mean"] <= full.hi_95).all()
    np.testing.assert_allclose(out.prediction.iloc[:2], full["mean"].iloc[[0, 2]])
    np.testing.assert_allclose(out.hi_80.iloc[:2], full.hi_80.iloc[[0, 2]])
    # R2's history ends 2016-04: 2016-05 is its first future period, 2016-01 is in the past.
    assert list(out.error.iloc[:2]) == ["", ""] and out.prediction.iloc[3:].isna().all()
    assert out.error.iloc[2] == "" and np.isfinite(out.prediction.iloc[2])
    assert out.error.iloc[3] == "group R2: 2016-01-01 is not after the last trained period 2016-04-01"
    assert out.error.iloc[4] == "no model for group R9"
    with pytest.raises(ValueError, match="is 13 periods after the last trained period 2014-12-01"):
        m.predict_group(("R1",), pd.DataFrame({"month": [pd.Timestamp("2016-01-01")]}))
    assert m.cache_info()["loaded"] == 1 and m.cache_info()["evictions"] >= 1  # the LRU bound holds


def test_the_pyfunc_forecasts_future_dates(forecaster_bundle, tmp_path):
    import mlflow

    from mlkit_workloads.forecast.meta_model import ManyModels

    d, _ = forecaster_bundle
    mlflow.pyfunc.save_model(str(tmp_path / "m"), python_model=ManyModels(), artifacts={"bundle": str(d)},
                             pip_requirements=["pandas"])
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    out = model.predict(pd.DataFrame({"region": ["R2"], "month": pd.to_datetime(["2016-05-01"])}))
    assert out.error.iloc[0] == "" and np.isfinite(out.prediction.iloc[0])
    assert {"lo_80", "hi_80", "lo_95", "hi_95"} <= set(out.columns)


def test_every_forecast_setting_has_a_description_in_the_schema():
    """Editors and `mlkit env schema` explain each key (the docstring under the field)."""
    schema = Forecast.model_json_schema()
    defs = schema.get("$defs", {})
    undocumented = [f"{name}.{key}" for name, model in [("Forecast", schema), *defs.items()]
                    for key, prop in model.get("properties", {}).items() if not prop.get("description")]
    assert undocumented == []
    assert "inferred from the" in schema["properties"]["frequency"]["description"]
