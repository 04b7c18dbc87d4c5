"""The classifier's drift: PSI of each input feature (served rows vs the version's training rows)
and of its score, the positive-class probability the service answered, vs the same model's
probabilities on its training rows (what the score looked like on the data it was fitted to)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .psi import psi


NEW_CATEGORY = "(not in training)"


def categories(ref: pd.Series) -> list[str]:
    """The reference's categories in code order."""
    return sorted(ref.dropna().astype(str).unique())


def code_labels(ref: pd.Series) -> dict[float, str]:
    """Each code's category, for plots: what a reader knows the feature by, not its code."""
    cats = categories(ref)
    return {**{float(i): c for i, c in enumerate(cats)}, float(len(cats)): NEW_CATEGORY}


def codes(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A categorical feature as numbers PSI can bin: the reference's categories in order, a category
    the reference never had one code past them (its own bin), missing values NaN (their own bin)."""
    cats = categories(ref)
    index = {c: float(i) for i, c in enumerate(cats)}

    def encode(s: pd.Series) -> np.ndarray:
        return np.array([np.nan if pd.isna(v) else index.get(str(v), float(len(cats))) for v in s], dtype=float)

    return encode(ref), encode(cur)


def reference_scores(model, rows: pd.DataFrame, cfg) -> np.ndarray:
    """The version's probabilities on its training rows (``cfg``: ``settings.Classifier``)."""
    from ..classifier.model import xy

    x, _ = xy(rows, cfg)
    return np.asarray(model.predict_proba(x)[:, 1], dtype=float)


def assess_classifier(served: pd.DataFrame, reference_rows: pd.DataFrame, ref_scores: np.ndarray, cfg, ms,
                      row) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per feature, one row for the score), in the monitoring table's columns (``row`` builds one)."""
    feats = []
    for f in cfg.columns.features:
        cur_col = served[f] if f in served else pd.Series([], dtype=float)
        if f in cfg.columns.categorical:
            ref, cur = codes(reference_rows[f], cur_col)
        else:
            ref = pd.to_numeric(reference_rows[f], errors="coerce").to_numpy(float)
            cur = pd.to_numeric(cur_col, errors="coerce").to_numpy(float)
        feats.append(row("feature", f, psi(ref, cur, ms.bins), ms.feature_psi_threshold, len(ref), len(cur),
                         ms.min_rows, ref, cur))
    cur = pd.to_numeric(served["prediction"], errors="coerce").to_numpy(float)
    score = row("score", "probability", psi(ref_scores, cur, ms.bins), ms.prediction_psi_threshold,
                len(ref_scores), len(cur), ms.min_rows, ref_scores, cur)
    return pd.DataFrame(feats), pd.DataFrame([score])
