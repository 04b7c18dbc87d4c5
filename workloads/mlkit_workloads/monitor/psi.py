"""Population Stability Index between a reference sample and a current sample.

PSI = sum over bins of (cur% - ref%) * ln(cur% / ref%). Bins are quantiles of the reference for
continuous values; a feature with few distinct values (flags, categories) gets one bin per value.
Empty bins are floored at ``EPS`` so one empty bin does not make PSI infinite. Missing values
(NaN) are a bin of their own: a feature that starts arriving as null is drift too.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-4


def _edges(ref: np.ndarray, bins: int, width: bool = False) -> np.ndarray | None:
    """Inner bin edges from the reference's quantiles (``width``: equal widths over its range); None
    for a discrete feature."""
    values = np.unique(ref)
    if len(values) <= bins:
        return None
    if width:
        return np.linspace(values[0], values[-1], bins + 1)[1:-1]
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    return edges


def distribution(values: np.ndarray, ref: np.ndarray, bins: int, width: bool = False) -> np.ndarray:
    """Share of ``values`` in each bin defined by ``ref`` (last bin: missing values)."""
    values = np.asarray(values, dtype=float)
    ref_ok = np.asarray(ref, dtype=float)
    ref_ok = ref_ok[~np.isnan(ref_ok)]
    missing = np.isnan(values)
    present = values[~missing]
    edges = _edges(ref_ok, bins, width) if len(ref_ok) else np.array([])
    if edges is None:  # discrete: one bin per reference value, plus one for values never seen
        cats = np.unique(ref_ok)
        idx = np.searchsorted(cats, present)
        known = (idx < len(cats)) & (cats[np.minimum(idx, len(cats) - 1)] == present)
        counts = np.append(np.bincount(idx[known], minlength=len(cats)), (~known).sum())
    else:
        counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    counts = np.append(counts, missing.sum()).astype(float)
    return counts / max(len(values), 1)


def psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10, width: bool = False) -> float:
    """``width``: equal-width bins over the reference's range instead of its quantiles (for values
    that sit in tight clusters, where quantile edges fall inside a cluster and split it by noise)."""
    ref, cur = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    p = np.maximum(distribution(ref, ref, bins, width), EPS)
    q = np.maximum(distribution(cur, ref, bins, width), EPS)
    return float(np.sum((q - p) * np.log(q / p)))
