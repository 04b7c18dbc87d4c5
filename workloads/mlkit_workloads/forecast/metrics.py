"""Error metrics and interval coverage of a backtest: pure numpy/pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(p, float))))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2)))


def wape(y: np.ndarray, p: np.ndarray) -> float:
    """Weighted absolute percentage error: sum|y - p| / sum|y|. NaN when every actual is 0."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    denom = np.abs(y).sum()
    return float(np.abs(y - p).sum() / denom) if denom > 0 else float("nan")


def seasonal_scale(history: np.ndarray, season: int) -> float:
    """MASE's denominator: the in-sample MAE of the seasonal naive (y_t vs y_{t-season}) on the
    history before the backtest. NaN when the history is shorter than a season + 1 or constant."""
    h = np.asarray(history, float)
    if len(h) <= season:
        return float("nan")
    d = np.mean(np.abs(h[season:] - h[:-season]))
    return float(d) if d > 0 else float("nan")


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of actuals inside [lo, hi]."""
    y, lo, hi = (np.asarray(a, float) for a in (y, lo, hi))
    return float(np.mean((y >= lo) & (y <= hi))) if len(y) else float("nan")


def backtest_metrics(cv: pd.DataFrame, levels: list[int], scale: float) -> dict[str, float]:
    """MAE, RMSE, WAPE, MASE (MAE / ``scale``) and coverage_L of the columns mean, lo_L, hi_L."""
    y, p = cv.y.to_numpy(float), cv["mean"].to_numpy(float)
    out = {"mae": mae(y, p), "rmse": rmse(y, p), "wape": wape(y, p)}
    out["mase"] = out["mae"] / scale if np.isfinite(scale) and scale > 0 else float("nan")
    for lv in levels:
        out[f"coverage_{lv}"] = coverage(y, cv[f"lo_{lv}"], cv[f"hi_{lv}"])
    return out


def backtest_cutoffs(last: pd.Timestamp, freq: str, horizon: int, windows: int) -> pd.DatetimeIndex:
    """The last training period of each rolling-origin window (oldest first): window w forecasts
    the ``horizon`` periods after its cutoff, and the newest ends at ``last``."""
    grid = pd.date_range(end=last, periods=windows * horizon + 1, freq=freq)
    return grid[[w * horizon for w in range(windows)]]
