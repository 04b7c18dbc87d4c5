"""Seeded synthetic data sets (no download): the forecast job's default daily sales, and a monthly set.

Daily store x item sales: level x trend x weekly x yearly seasonality x promo lift x holiday effect,
Poisson noise, and what real series do that a calendar regression cannot follow: the trend changes
slope at a random point and about half of the series shift level (up or down) in their last year.
A few series are deliberately bad so the job's per-group statuses get exercised: some start late
(too short to train), one is constant and one has most of its target missing.

The promotions and holidays are planned a year ahead: :func:`future_features` gives their values
for the periods after the history, from the same random draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2023-01-01")
FUTURE_DAYS = 366  # promotions and holidays known this far after the history
# (month, day) -> multiplier. Closed on Christmas and New Year, busier before/after.
HOLIDAYS = {(1, 1): 0.05, (5, 1): 1.4, (7, 14): 1.3, (11, 11): 1.3, (12, 24): 1.6, (12, 25): 0.05, (12, 26): 1.5}


def _daily(stores: int, items: int, days: int, seed: int, broken: bool) -> pd.DataFrame:
    """History and planned future together (``days + FUTURE_DAYS`` per series, sales only in the history)."""
    rng = np.random.default_rng(seed)
    total = days + FUTURE_DAYS
    dates = pd.date_range(START, periods=total, freq="D", tz="UTC")
    t = np.arange(total)
    weekly_shape = np.array([0.85, 0.8, 0.85, 0.95, 1.15, 1.35, 1.05])  # Monday..Sunday
    holiday_mult = np.array([HOLIDAYS.get((d.month, d.day), 1.0) for d in dates])
    is_holiday = (holiday_mult != 1.0).astype(int)
    n = stores * items
    special = _special_series(n) if broken else {}
    frames = []
    for s in range(stores):
        store_size = rng.uniform(0.6, 1.6)
        for i in range(items):
            g = s * items + i
            level = store_size * rng.lognormal(3.3, 0.5)
            # Piecewise trend: a second slope from a change point in the second half of the history.
            knee = int(rng.uniform(0.5, 0.85) * days)
            slope1, slope2 = rng.uniform(-0.15, 0.35), rng.uniform(-0.3, 0.5)
            trend = 1 + slope1 * np.minimum(t, knee) / 365 + slope2 * np.maximum(t - knee, 0) / 365
            trend = np.maximum(trend, 0.2)
            if rng.random() < 0.5:  # a level shift in the last year of the history (new store layout, lost listing)
                at = int(days - rng.uniform(60, min(330, days - 30)))
                trend = trend * np.where(t >= at, rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.3, 1.6)]), 1.0)
            amp = rng.uniform(0.05, 0.3)
            yearly = 1 + amp * np.sin(2 * np.pi * (t + rng.uniform(0, 365)) / 365.25)
            weekly = weekly_shape[dates.dayofweek] ** rng.uniform(0.7, 1.3)
            promo = (rng.random(total) < rng.uniform(0.04, 0.12)).astype(int)
            lift = 1 + promo * rng.uniform(0.3, 0.8)
            mean = level * trend * yearly * weekly * lift * holiday_mult
            y = rng.poisson(mean).astype(float)
            y[days:] = np.nan
            kind = special.get(g)
            start = 0
            if kind == "short":
                start = days - min(45, days // 2)
            elif kind == "constant":
                y[:days] = 12.0
            elif kind == "missing":
                y[:days][rng.random(days) < 0.6] = np.nan
            frames.append(pd.DataFrame({
                "store": f"S{s + 1:02d}", "item": f"I{i + 1:02d}", "date": dates[start:],
                "sales": y[start:], "promo": promo[start:], "holiday": is_holiday[start:],
            }))
    return pd.concat(frames, ignore_index=True)


def sales(stores: int = 5, items: int = 6, days: int = 730, seed: int = 7, broken: bool = True) -> pd.DataFrame:
    """Columns: store, item, date (UTC midnight), sales (float, may be NaN), promo (0/1), holiday (0/1)."""
    df = _daily(stores, items, days, seed, broken)
    return df[df.date < START.tz_localize("UTC") + pd.Timedelta(days=days)].reset_index(drop=True)


def future_features(stores: int = 5, items: int = 6, days: int = 730, seed: int = 7, periods: int = FUTURE_DAYS,
                    broken: bool = True) -> pd.DataFrame:
    """The planned promo and holiday calendar for the ``periods`` days after :func:`sales`' history."""
    if not 1 <= periods <= FUTURE_DAYS:
        raise ValueError(f"future features are planned 1 to {FUTURE_DAYS} days ahead, not {periods}")
    df = _daily(stores, items, days, seed, broken)
    first = START.tz_localize("UTC") + pd.Timedelta(days=days)
    keep = (df.date >= first) & (df.date < first + pd.Timedelta(days=periods))
    return df.loc[keep, ["store", "item", "date", "promo", "holiday"]].reset_index(drop=True)


def _special_series(n: int) -> dict[int, str]:
    """Which series are bad: spread over the set, a handful at most (~15 % of a small set)."""
    if n < 4:
        return {}
    out = {n - 1: "short", n // 2: "constant", n // 3: "missing"}
    if n >= 20:
        out[n // 5] = "short"
    return out


def monthly(series: int = 12, months: int = 300, seed: int = 3, end: str = "2024-12-01") -> pd.DataFrame:
    """A monthly set shaped like public economic data: columns ``region``, ``month`` (month start,
    as text), ``value``. Series start decades apart (the months before a series begins are present
    with an empty value), trend, yearly seasonality, noise, a few internal gaps (missing rows and
    empty values), and a level shift in the last year of every third series. Every series has at
    least 120 months; none is broken."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=end, periods=months, freq="MS")
    frames = []
    for k in range(series):
        start = int(rng.integers(0, months - 120))
        t = np.arange(months) - start
        level = rng.uniform(50, 500)
        y = level * (1 + rng.uniform(-0.001, 0.004) * t) * (1 + rng.uniform(0.05, 0.25) * np.sin(2 * np.pi * (t + k) / 12))
        y = y + rng.normal(0, 0.03 * level, months)
        if k % 3 == 0:
            y[-int(rng.integers(6, 12)):] *= rng.choice([0.7, 1.4])
        y[:start] = np.nan
        frame = pd.DataFrame({"region": f"R{k + 1:02d}", "month": dates.strftime("%Y-%m-%d"), "value": y.round(2)})
        inside = np.arange(start + 5, months - 15)
        frame.loc[rng.choice(inside, 2, replace=False), "value"] = np.nan  # empty values
        frames.append(frame.drop(index=rng.choice(inside, 2, replace=False)))  # and missing rows
    return pd.concat(frames, ignore_index=True)
