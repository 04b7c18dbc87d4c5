"""The service's pandas-free features equal the training/scoring features, value for value."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from mlkit_workloads.forecast.features import make_features
from mlkit_workloads.serve.features import row_features


def test_row_features_equal_make_features_on_random_rows():
    rng = np.random.default_rng(3)
    zones = [None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]
    stamps, values = [], []
    for i in range(500):
        base = dt.datetime(1990, 1, 1) + dt.timedelta(seconds=int(rng.integers(0, 80 * 365 * 86400)))
        tz = zones[i % len(zones)]
        stamps.append(base if tz is None else base.replace(tzinfo=tz))
        values.append([None if rng.random() < 0.1 else float(rng.normal()), float(rng.integers(0, 2))])
    ours = row_features(stamps, values)
    # make_features reads a column of timestamps; give it UTC-normalised ones as pandas would get them.
    ts = [s.astimezone(dt.timezone.utc) if s.tzinfo else s.replace(tzinfo=dt.timezone.utc) for s in stamps]
    df = pd.DataFrame({"date": pd.to_datetime(ts, utc=True), "a": [v[0] for v in values], "b": [v[1] for v in values]})
    theirs = make_features(df, "date", ["a", "b"])
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs.to_numpy(), equal_nan=True)


def test_dates_around_boundaries():
    stamps = [dt.datetime(2000, 1, 1), dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.timezone.utc),
              dt.datetime(2024, 12, 31, 22, tzinfo=dt.timezone(dt.timedelta(hours=-3)))]  # = 2025-01-01 01:00 UTC
    x = row_features(stamps, [[1.0], [None], [0.0]])
    assert x[0, :5].tolist() == [5, 1, 1, 1, 0]  # Saturday, day 0
    assert x[1, 2] == 60 and np.isnan(x[1, 5])
    assert x[2, :4].tolist() == [2, 1, 1, 1]  # Wednesday 1 January in UTC
