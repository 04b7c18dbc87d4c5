"""Seeded synthetic store x item daily sales: the forecast job's default data (no download).

Each series = level x trend x weekly x yearly seasonality x promo lift x holiday effect, with
Poisson noise. A few series are deliberately bad so the job's per-group statuses get exercised:
some start late (too short to train), one is constant and one has most of its target missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2023-01-01")
# (month, day) -> multiplier. Closed on Christmas and New Year, busier before/after.
HOLIDAYS = {(1, 1): 0.05, (5, 1): 1.4, (7, 14): 1.3, (11, 11): 1.3, (12, 24): 1.6, (12, 25): 0.05, (12, 26): 1.5}


def sales(stores: int = 5, items: int = 6, days: int = 730, seed: int = 7, broken: bool = True) -> pd.DataFrame:
    """Columns: store, item, date (UTC midnight), sales (float, may be NaN), promo (0/1), holiday (0/1)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(START, periods=days, freq="D", tz="UTC")
    t = np.arange(days)
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
            trend = 1 + rng.uniform(-0.15, 0.35) * t / 365
            amp = rng.uniform(0.05, 0.3)
            yearly = 1 + amp * np.sin(2 * np.pi * (t + rng.uniform(0, 365)) / 365.25)
            weekly = weekly_shape[dates.dayofweek] ** rng.uniform(0.7, 1.3)
            promo = (rng.random(days) < rng.uniform(0.04, 0.12)).astype(int)
            lift = 1 + promo * rng.uniform(0.3, 0.8)
            mean = level * trend * yearly * weekly * lift * holiday_mult
            y = rng.poisson(mean).astype(float)
            kind = special.get(g)
            rows = slice(None)
            if kind == "short":
                rows = slice(days - min(45, days // 2), None)
            elif kind == "constant":
                y[:] = 12.0
            elif kind == "missing":
                y[rng.random(days) < 0.6] = np.nan
            frames.append(pd.DataFrame({
                "store": f"S{s + 1:02d}", "item": f"I{i + 1:02d}", "date": dates[rows],
                "sales": y[rows], "promo": promo[rows], "holiday": is_holiday[rows],
            }))
    return pd.concat(frames, ignore_index=True)


def _special_series(n: int) -> dict[int, str]:
    """Which series are bad: spread over the set, a handful at most (~15 % of a small set)."""
    if n < 4:
        return {}
    out = {n - 1: "short", n // 2: "constant", n // 3: "missing"}
    if n >= 20:
        out[n // 5] = "short"
    return out
