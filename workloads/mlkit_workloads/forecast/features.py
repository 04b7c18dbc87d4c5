"""Model inputs from one group's rows: calendar features + the mapped exogenous features.

No lags of the target: the forecast horizon is the whole validation window, so a lag shorter
than it would not be known at prediction time. Training and scoring share this one function.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def make_features(df: pd.DataFrame, timestamp: str, features: list[str]) -> pd.DataFrame:
    ts = pd.to_datetime(df[timestamp], utc=True)
    out = pd.DataFrame({
        "dow": ts.dt.dayofweek.to_numpy(),
        "dom": ts.dt.day.to_numpy(),
        "doy": ts.dt.dayofyear.to_numpy(),
        "month": ts.dt.month.to_numpy(),
        "t": ((ts - EPOCH).dt.total_seconds() / 86400.0).to_numpy(),
    })
    for f in features:
        out[f] = pd.to_numeric(df[f], errors="coerce").astype(float).to_numpy()
    return out.astype(np.float32)
