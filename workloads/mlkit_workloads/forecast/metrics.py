"""Split, error metrics and the naive seasonal baseline: pure pandas/numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd


def time_split(df: pd.DataFrame, timestamp: str, validation_periods: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-ordered split: the last ``validation_periods`` distinct timestamps validate, the rest train.

    Never shuffles: a random split would let the model see the future it is judged on.
    """
    df = df.sort_values(timestamp, kind="stable")
    stamps = df[timestamp].drop_duplicates()
    if len(stamps) <= validation_periods:
        return df.iloc[:0], df
    cut = stamps.iloc[-validation_periods]
    return df[df[timestamp] < cut], df[df[timestamp] >= cut]


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(p, float))))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2)))


def wape(y: np.ndarray, p: np.ndarray) -> float:
    """Weighted absolute percentage error: sum|y - p| / sum|y|. NaN when every actual is 0."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    denom = np.abs(y).sum()
    return float(np.abs(y - p).sum() / denom) if denom > 0 else float("nan")


def all_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}mae": mae(y, p), f"{prefix}rmse": rmse(y, p), f"{prefix}wape": wape(y, p)}


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last full season of ``history`` over ``horizon`` steps (last value if shorter)."""
    history = np.asarray(history, float)
    if len(history) == 0:
        raise ValueError("seasonal naive needs at least one observation")
    last = history[-season:] if len(history) >= season else history[-1:]
    reps = int(np.ceil(horizon / len(last)))
    return np.tile(last, reps)[:horizon]
