"""One group's rows as a regular series: trimmed, on the grid, gaps filled by the configured policy.

Pure pandas. Every problem is a :class:`SeriesProblem` with a status (``skipped`` when there is
nothing worth training, ``failed`` when the data is wrong) and a reason that names what and where;
``train_group`` turns it into the group's result row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .frequency import off_grid


class SeriesProblem(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Series:
    """``frame``: columns ds (naive UTC), y, and the features, one row per period, no gaps left."""

    frame: pd.DataFrame
    observed: int  # periods with a value before filling
    filled: int  # periods filled by the gap policy
    trimmed: int  # leading/trailing rows without a value dropped
    older: int = 0  # periods before the history kept (``max_periods``)

    @property
    def last(self) -> pd.Timestamp:
        return self.frame.ds.iloc[-1]


def _naive_utc(col: pd.Series) -> pd.Series:
    out = pd.to_datetime(col, utc=True)
    return out.dt.tz_convert("UTC").dt.tz_localize(None)


def _show(stamps, n: int = 3) -> str:
    stamps = list(stamps)
    shown = ", ".join(str(pd.Timestamp(s).date()) for s in stamps[:n])
    return shown + (f" and {len(stamps) - n} more" if len(stamps) > n else "")


def prepare(pdf: pd.DataFrame, timestamp: str, target: str, features: list[str], freq: str,
            fill: str = "interpolate", max_missing_share: float = 0.2, max_periods: int | None = None) -> Series:
    """Rows of one group -> a gap-free series on ``freq``'s grid.

    Order of the rules: (1) timestamps parse, are unique and sit on the grid; (2) leading and
    trailing periods without a target value are trimmed (a series that starts later is not
    missing data); (3) the missing share of what is left (absent periods + empty values) is
    judged against ``max_missing_share``; (4) the gaps are filled (``interpolate``, ``zero`` or
    ``forward``); features of filled periods carry the previous period's value. With ``max_periods``,
    only the last that many periods of the grid are kept (from the first of them with a value), before
    (3): the missing share is that of the history the models see.
    """
    df = pd.DataFrame({"ds": _naive_utc(pdf[timestamp]),
                       "y": pd.to_numeric(pdf[target], errors="coerce").astype(float)})
    for f in features:
        df[f] = pd.to_numeric(pdf[f], errors="coerce").astype(float).to_numpy()
    if df.ds.isna().any():
        raise SeriesProblem("failed", f"{int(df.ds.isna().sum())} row(s) without a timestamp")
    dup = df.ds[df.ds.duplicated()]
    if len(dup):
        raise SeriesProblem("failed", f"duplicated timestamps: {_show(dup.drop_duplicates())}")
    bad = off_grid(pd.DatetimeIndex(df.ds), freq)
    if len(bad):
        raise SeriesProblem("failed", f"{len(bad)} timestamp(s) not on the {freq} grid: {_show(bad)}")
    df = df.sort_values("ds", kind="stable").reset_index(drop=True)
    valid = np.flatnonzero(df.y.notna().to_numpy())
    if len(valid) == 0:
        raise SeriesProblem("skipped", "no target values")
    trimmed = len(df) - (valid[-1] - valid[0] + 1)
    df = df.iloc[valid[0]:valid[-1] + 1]
    grid = pd.date_range(df.ds.iloc[0], df.ds.iloc[-1], freq=freq)
    older = 0
    if max_periods and len(grid) > max_periods:
        kept = grid[-max_periods:]
        start = df.ds[(df.ds >= kept[0]) & df.y.notna()].iloc[0]  # the last period has a value: one exists
        older, grid = int(np.searchsorted(grid, start)), grid[grid >= start]
        df = df[df.ds >= start]
    df = df.set_index("ds").reindex(grid)
    df.index.name = "ds"
    observed = int(df.y.notna().sum())
    missing = len(df) - observed
    share = missing / len(df)
    if share > max_missing_share:
        raise SeriesProblem("skipped", f"{share:.0%} of the {len(df)} periods from {grid[0].date()} to "
                                       f"{grid[-1].date()} are missing (max {max_missing_share:.0%}, gaps.max_missing_share)")
    if missing:
        if fill == "zero":
            df["y"] = df.y.fillna(0.0)
        elif fill == "forward":
            df["y"] = df.y.ffill()
        else:
            df["y"] = df.y.interpolate(method="linear")
    if features:
        df[features] = df[features].ffill().bfill()
        if df[features].isna().any().any():
            empty = [f for f in features if df[f].isna().all()]
            raise SeriesProblem("failed", f"feature column(s) {', '.join(empty)} have no values")
    return Series(df.reset_index(), observed, missing, trimmed, older)
