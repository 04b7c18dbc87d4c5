"""trees.Trees against XGBoost's own predictions: the same float32 numbers, missing values included."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from serve_helpers import classifier_data, fitted_classifier

from mlkit_workloads.serve.single import CompiledPipeline
from mlkit_workloads.trees import Trees


def _rows(n: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, (n, width))
    x[rng.random((n, width)) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("objective", ["reg:squarederror", "binary:logistic"])
def test_trees_walked_in_python_give_the_boosters_predictions_exactly(objective):
    x = _rows(400, 6, 0)
    y = np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) ** 2 > 1 if objective == "binary:logistic" else \
        np.nan_to_num(x[:, 0]) * 3 + np.nan_to_num(x[:, 2])
    model = (xgb.XGBClassifier if objective == "binary:logistic" else xgb.XGBRegressor)(
        n_estimators=25, max_depth=5, n_jobs=1).fit(x, y.astype(float))
    booster = model.get_booster()
    trees = Trees.of(booster, (0, 25))
    test = _rows(300, 6, 1)
    ref = booster.inplace_predict(test, iteration_range=(0, 25))
    assert np.array_equal(np.array([trees.predict(r) for r in test], dtype=np.float32), ref)
    fewer = Trees.of(booster, (0, 10))  # an iteration range (best_iteration) keeps only those trees
    assert np.array_equal(np.array([fewer.predict(r) for r in test], dtype=np.float32),
                          booster.inplace_predict(test, iteration_range=(0, 10)))


def test_the_classifier_pipelines_trees_match_and_an_unknown_objective_is_refused():
    compiled = CompiledPipeline.of(fitted_classifier())
    assert compiled.trees is not None
    x, _ = classifier_data()
    rows = compiled.transform(x.sample(200, random_state=2).to_dict("records"))
    assert np.array_equal(np.array([compiled.trees.predict(r) for r in rows], dtype=np.float32),
                          compiled.booster.inplace_predict(rows, iteration_range=compiled.iteration_range))
    poisson = xgb.XGBRegressor(n_estimators=3, objective="count:poisson").fit(np.ones((20, 2)), np.arange(20))
    assert Trees.of(poisson.get_booster(), (0, 3)) is None  # its link is not one Trees knows
