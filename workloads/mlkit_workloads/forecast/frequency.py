"""The data's period: inferred or given, and what it implies (season, horizon, backtest size).

Pure pandas. Frequencies are pandas offset aliases; a few families get defaults:

    family   aliases                      season  horizon  periods per year  history kept
    daily    D                            7       28       365               730 (2 years)
    weekly   W, W-SUN ... W-SAT           52      13       52                260 (5 years)
    monthly  MS, ME (M on pandas < 2.2)   12      12       12                120 (10 years)
    quarterly QS, QE (Q), QS-JAN ...      4       8        4                 60 (15 years)
    yearly   YS, YE (A, Y)                1       3        1                 40

History kept: the models see the last this many periods of a series (``max_history_periods``), at
least the periods the plan needs plus a season. Older periods say little about the next horizon and
cost every candidate time (AutoTheta superlinearly: 0.5 s per fit at 1,000 daily points, 10 s at
4,000, bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# family -> (default season, default horizon, periods per year, seasons that make sense)
FAMILIES: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "daily": (7, 28, 365, (1, 7, 30, 365)),
    "weekly": (52, 13, 52, (1, 4, 13, 26, 52)),
    "monthly": (12, 12, 12, (1, 2, 3, 4, 6, 12)),
    "quarterly": (4, 8, 4, (1, 2, 4)),
    "yearly": (1, 3, 1, (1,)),
}
HISTORY = {"daily": 730, "weekly": 260, "monthly": 120, "quarterly": 60, "yearly": 40}


def family(freq: str) -> str:
    """The family of a pandas offset alias; ValueError for an alias pandas does not know or we do not
    support (hourly and finer: the defaults here are for business series)."""
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise ValueError(f"frequency {freq!r} is not a pandas offset alias (e.g. D, W, MS, QS)") from None
    name = type(offset).__name__
    if name == "Day" and offset.n == 1:
        return "daily"
    if name == "Week" and offset.n == 1:
        return "weekly"
    if name in ("MonthBegin", "MonthEnd") and offset.n == 1:
        return "monthly"
    if name in ("QuarterBegin", "QuarterEnd") and offset.n == 1:
        return "quarterly"
    if name in ("YearBegin", "YearEnd") and offset.n == 1:
        return "yearly"
    raise ValueError(f"frequency {freq!r} is not supported: use daily (D), weekly (W), monthly (MS/ME), "
                     "quarterly (QS/QE) or yearly (YS/YE)")


# pandas 2.2 renamed the period-end aliases (M -> ME, Q -> QE, A -> YE); pandas 1.5 (Databricks
# Runtime 15.4) knows only the old ones.
_NEW_ALIASES = tuple(int(p) for p in pd.__version__.split(".")[:2]) >= (2, 2)


def _end(new: str, old: str) -> str:
    return new if _NEW_ALIASES else old


def infer_frequency(stamps: pd.Series | pd.DatetimeIndex) -> str:
    """The offset alias that the (distinct, possibly gappy) timestamps sit on.

    ``pd.infer_freq`` needs a gap-free index; real data has gaps and series that start decades
    apart, so this looks at the typical step (the median distance between consecutive distinct
    timestamps) and then checks that every timestamp sits on that family's grid (month starts,
    month ends, the same weekday, ...). Raises ValueError saying what was seen.
    """
    idx = pd.DatetimeIndex(pd.Series(stamps).dropna().unique()).sort_values()
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if len(idx) < 3:
        raise ValueError(f"cannot infer the frequency from {len(idx)} distinct timestamp(s): set 'frequency'")
    days = float(np.median(np.diff(idx.asi8)) / 86_400e9)
    midnight = bool((idx == idx.normalize()).all())
    candidates: list[str] = []
    if 0.9 <= days <= 1.1 and midnight:
        candidates = ["D"]
    elif 6.5 <= days <= 7.5 and midnight:
        candidates = [f"W-{idx[0].day_name()[:3].upper()}"]
    elif 27 <= days <= 32:
        candidates = ["MS", _end("ME", "M")]
    elif 88 <= days <= 93:
        candidates = ["QS", _end("QE", "Q")]
    elif 360 <= days <= 370:
        candidates = ["YS", _end("YE", "A")]
    for freq in candidates:
        if off_grid(idx, freq).empty:
            return "W" if freq == "W-SUN" else freq
    raise ValueError(f"cannot infer the frequency: the typical step is {days:g} days and the timestamps are "
                     f"not all on one daily/weekly/monthly/quarterly/yearly grid (first {idx[0]}); set 'frequency'")


def off_grid(stamps: pd.DatetimeIndex | pd.Series, freq: str) -> pd.DatetimeIndex:
    """The timestamps that are not on ``freq``'s grid (e.g. a 15th in month-start data)."""
    idx = pd.DatetimeIndex(stamps)
    offset = pd.tseries.frequencies.to_offset(freq)
    on = np.array([offset.is_on_offset(t) for t in idx], dtype=bool) if len(idx) else np.array([], bool)
    on &= np.asarray(idx == idx.normalize())  # a period is a date: 00:00 on its day
    return idx[~on]


@dataclass(frozen=True)
class Plan:
    """What one run uses: the frequency and the sizes that follow from it."""

    freq: str
    family: str
    season_length: int
    horizon: int
    windows: int
    min_train_periods: int
    max_periods: int | None = None  # the last this many periods of a series are modelled (None: all)

    @property
    def min_periods(self) -> int:
        """Periods a series needs: the earliest backtest window still has ``min_train_periods``."""
        return self.min_train_periods + self.windows * self.horizon

    def as_dict(self) -> dict:
        return {"frequency": self.freq, "season_length": self.season_length, "horizon": self.horizon,
                "backtest_windows": self.windows, "min_train_periods": self.min_train_periods,
                "max_history_periods": self.max_periods}


def plan(cfg, freq: str) -> Plan:
    """Sizes for ``freq`` from the settings, defaults filled in and checked against the frequency.
    ``cfg`` is a ``settings.Forecast``. Raises ValueError naming the setting that does not fit."""
    fam = family(freq)
    season_default, horizon_default, per_year, seasons = FAMILIES[fam]
    season = cfg.season_length or season_default
    horizon = cfg.horizon or horizon_default
    if season not in seasons:
        raise ValueError(f"season_length {season} does not fit {fam} data ({freq}): use one of "
                         f"{', '.join(map(str, seasons))} (default {season_default})")
    if horizon > 5 * per_year + 28:
        raise ValueError(f"horizon {horizon} is more than 5 years of {fam} periods ({freq})")
    min_train = cfg.min_train_periods or max(2 * season, horizon, 8)
    if min_train < season + 2:
        raise ValueError(f"min_train_periods {min_train} is shorter than one season ({season}) + 2 of {fam} data")
    need = min_train + cfg.backtest_windows * horizon
    history = cfg.max_history_periods or max(HISTORY[fam], need + season)
    if history < need:
        raise ValueError(f"max_history_periods {history} is shorter than the {need} periods the plan needs "
                         f"(min_train_periods {min_train} + {cfg.backtest_windows} backtest windows of {horizon})")
    return Plan(freq, fam, season, horizon, cfg.backtest_windows, min_train, history)


def future_dates(last: pd.Timestamp, freq: str, steps: int) -> pd.DatetimeIndex:
    """The ``steps`` periods after ``last`` (which is on the grid)."""
    return pd.date_range(last, periods=steps + 1, freq=freq)[1:]


def steps_ahead(last: pd.Timestamp, dates: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """How many periods after ``last`` each date is (0 or less: not in the future; -1 off the grid)."""
    dates = pd.DatetimeIndex(dates)
    if len(dates) == 0:
        return np.zeros(0, dtype=int)
    far = max(dates.max(), last)
    grid = pd.date_range(last, far, freq=freq)
    pos = grid.get_indexer(dates)
    out = np.where(pos >= 0, pos, -1)
    out[(dates <= last)] = 0
    return out
