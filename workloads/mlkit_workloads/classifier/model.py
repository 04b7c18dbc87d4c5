"""The classifier itself, pure scikit-learn: pipeline, split, metrics. No Spark, no MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import Classifier


def xy(df: pd.DataFrame, cfg: Classifier) -> tuple[pd.DataFrame, np.ndarray]:
    c = cfg.columns
    x = df[list(c.features)].copy()
    for name in c.categorical:
        x[name] = x[name].astype("string").astype(object).where(x[name].notna(), np.nan)
    y = (df[c.target].astype(str) == c.positive_label).to_numpy(int)
    return x, y


def split(x: pd.DataFrame, y: np.ndarray, test_size: float, seed: int = 42):
    """Stratified: with 3 % positives a plain random split can leave a fold nearly without any."""
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)


def suggest(trial, max_rounds: int) -> dict:
    return {
        "n_estimators": trial.suggest_int("n_estimators", min(20, max_rounds), max_rounds),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.6, 1.0),
    }


def build(cfg: Classifier, params: dict, seed: int = 42):
    """impute (+scale for the oversampler's distances) / one-hot -> optional oversampling -> XGBoost."""
    from imblearn.over_sampling import ADASYN, SMOTE
    from imblearn.pipeline import Pipeline
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from xgboost import XGBClassifier

    cat = list(cfg.columns.categorical)
    num = [f for f in cfg.columns.features if f not in cat]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)), cat),
    ])
    steps = [("prep", prep)]
    if cfg.oversampling == "adasyn":
        steps.append(("oversample", ADASYN(random_state=seed)))
    elif cfg.oversampling == "smote":
        steps.append(("oversample", SMOTE(random_state=seed)))
    steps.append(("model", XGBClassifier(**params, n_jobs=1, random_state=seed, eval_metric="logloss")))
    return Pipeline(steps)


def best_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    """The probability cut with the best Cohen's kappa on held-out rows.

    Oversampling trains on a balanced world, so its probabilities are inflated and 0.5 is far
    too low a cut for 3 % positives; the threshold is chosen on validation rows, never on test.
    """
    from sklearn.metrics import cohen_kappa_score

    grid = np.unique(np.quantile(proba, np.linspace(0.5, 0.995, 60)))
    scores = [cohen_kappa_score(y, (proba >= t).astype(int)) for t in grid]
    return float(grid[int(np.argmax(scores))])


def with_threshold(pipeline, threshold: float):
    """The final estimator: predict() applies the tuned threshold; predict_proba() is unchanged."""
    from sklearn.model_selection import FixedThresholdClassifier

    return FixedThresholdClassifier(pipeline, threshold=threshold, response_method="predict_proba")


def evaluate(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, cohen_kappa_score, f1_score, roc_auc_score

    pred = (proba >= threshold).astype(int)
    return {"roc_auc": float(roc_auc_score(y, proba)), "kappa": float(cohen_kappa_score(y, pred)),
            "f1": float(f1_score(y, pred, zero_division=0)), "avg_precision": float(average_precision_score(y, proba)),
            "positive_rate": float(pred.mean())}
