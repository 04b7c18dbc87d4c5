"""The spec of a many-models bundle: what every group model in it was trained on and forecasts.

Written by train_many into the bundle's ``index.json`` (``spec``), read by the meta model, batch
scoring, the scoring service and the monitoring job. Bundles of calendar boosters (versions before
forecasters) have no frequency, horizon or levels: ``forecasts_future`` is False for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class BundleSpec:
    keys: tuple[str, ...]
    timestamp: str
    features: tuple[str, ...] = ()
    target: str | None = None
    run_id: str | None = None
    trained_at: str | None = None
    levels: tuple[int, ...] = ()  # prediction interval levels (lo_L/hi_L columns)
    frequency: str | None = None  # pandas offset alias of the periods; None in calendar-booster bundles
    season_length: int | None = None
    horizon: int | None = None
    backtest_windows: int | None = None
    min_train_periods: int | None = None
    max_history_periods: int | None = None  # the last this many periods of a group were modelled
    # The meta model's own LRU bounds when loaded by MLflow (the service passes its own settings).
    lru_max_models: int | None = None
    lru_max_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer writer added: kept, not read

    @property
    def forecasts_future(self) -> bool:
        """Forecaster bundles know each group's history, so they forecast the periods after it."""
        return self.frequency is not None and self.horizon is not None

    @property
    def bands(self) -> list[str]:
        return [f"{side}_{lv}" for lv in self.levels for side in ("lo", "hi")]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BundleSpec":
        """From an index's ``spec``; ValueError naming what is missing (keys and timestamp are required)."""
        missing = [k for k in ("keys", "timestamp") if k not in d]
        if missing:
            raise ValueError(f"bundle spec has no {', '.join(missing)}")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in d.items() if k in known}
        for k in ("keys", "features", "levels"):
            if k in values:
                values[k] = tuple(values[k] or ())
        return cls(**values, extra={k: v for k, v in d.items() if k not in known})

    def as_dict(self) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k != "extra"}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}
