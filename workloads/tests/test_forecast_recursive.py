"""The numpy recursive predictor of the XGBoost candidate (models.RecursiveBoost) against
mlforecast's own predict: same forecasts and intervals on several groups, frequencies and
feature sets, and the fallback to the library for a model it does not know."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from mlkit_workloads.forecast.frequency import Plan, future_dates
from mlkit_workloads.forecast.models import _future_features, fit

LEVELS = [80, 95]


def _series(freq: str, n: int, seed: int, level: float, features: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-04", periods=n, freq=freq)
    promo = (rng.random(n) < 0.3).astype(float)
    trend = np.linspace(0, level, n)
    y = level * (1 + (2 * promo if features else 0)) + trend + rng.normal(0, 0.05 * level, n)
    out = pd.DataFrame({"ds": ds, "y": y})
    return out.assign(promo=promo, holiday=(rng.random(n) < 0.05).astype(float)) if features else out


CASES = [  # (frequency, family, season, horizon, periods, seed, level, features)
    ("D", "daily", 7, 7, 200, 0, 10.0, True),
    ("D", "daily", 7, 14, 240, 1, 80.0, True),
    ("D", "daily", 7, 7, 150, 2, 3.0, False),
    ("W-MON", "weekly", 52, 8, 160, 3, 20.0, False),
    ("MS", "monthly", 12, 6, 72, 4, 500.0, True),
]


@pytest.mark.parametrize("freq, fam, season, horizon, n, seed, level, with_features", CASES)
def test_numpy_recursive_forecast_equals_mlforecasts(freq, fam, season, horizon, n, seed, level, with_features):
    features = ["promo", "holiday"] if with_features else []
    plan = Plan(freq, fam, season, horizon, 2, max(2 * season, horizon, 8))
    model = cloudpickle.loads(cloudpickle.dumps(fit("xgboost", _series(freq, n, seed, level, with_features),
                                                    features, plan, LEVELS, trees=30, seed=seed)))
    assert model.recursive is not None
    rng = np.random.default_rng(seed + 100)
    dates = future_dates(model.last, freq, horizon)
    future = pd.DataFrame({"ds": dates, "promo": rng.integers(0, 2, horizon).astype(float),
                           "holiday": rng.integers(0, 2, horizon).astype(float)})
    for steps in (1, 3, horizon):
        x = _future_features(future, model.last, freq, steps, features, model.last_features) if features else None
        library = model._library(steps, x)  # mlforecast's recursive predict and conformal intervals
        fast = model.forecast(steps, future if features else None)
        assert list(fast.columns) == list(library.columns) == ["ds", "mean", "lo_80", "lo_95", "hi_80", "hi_95"]
        assert (fast.ds.to_numpy() == library.ds.to_numpy()).all()
        np.testing.assert_allclose(fast.drop(columns="ds").to_numpy(), library.drop(columns="ds").to_numpy(),
                                   rtol=1e-9, atol=1e-9)
        if features:  # the serving path: arrays in, arrays out
            values = future[features].to_numpy(float)[:steps]
            arrays = model.steps(steps, model.exog(values))
            np.testing.assert_allclose(arrays["mean"], library["mean"].to_numpy(), rtol=1e-9, atol=1e-9)
            assert list(model.exog(values)[0, len(features):]) == [model.last_features[f] for f in features]
    model.recursive.trees = None  # each step through the booster's inplace_predict instead: the same
    again = model.forecast(horizon, future if features else None)
    np.testing.assert_allclose(again.drop(columns="ds").to_numpy(), fast.drop(columns="ds").to_numpy(),
                               rtol=1e-9, atol=1e-9)
    assert "_recursive" not in cloudpickle.loads(cloudpickle.dumps(model)).__dict__  # rebuilt, not pickled


def test_an_unknown_model_shape_falls_back_to_the_library():
    plan = Plan("D", "daily", 7, 7, 2, 14)
    model = fit("xgboost", _series("D", 120, 5, 10.0, True), ["promo", "holiday"], plan, LEVELS, trees=10)
    model.fitted.ts.target_transforms = []  # not the candidate mlforecast_model builds
    model.__dict__.pop("_recursive", None)
    assert model.recursive is None
    future = pd.DataFrame({"ds": future_dates(model.last, "D", 2), "promo": [1.0, 0.0], "holiday": [0.0, 0.0]})
    out = model.steps(2, model.exog(future[["promo", "holiday"]].to_numpy(float)))
    assert set(out) == {"mean", "lo_80", "lo_95", "hi_80", "hi_95"} and len(out["mean"]) == 2
