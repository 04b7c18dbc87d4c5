"""The models behind the API: per served model, the alias's current version, swapped atomically
when the alias moves (:class:`VersionWatcher`); the forecast bundle's groups (:class:`BundleService`).

A request takes one reference to the current :class:`LoadedVersion` and uses it to the end, so a
swap never changes the model under a request and never drops one; the old version is freed once
its last request finishes. Group models load on first use (the meta model's LRU bounds memory);
a per-group lock makes concurrent first requests for one group share one load.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import weakref
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pandas as pd

from ..forecast.frequency import future_dates
from ..forecast.meta_model import UnknownGroup, canonical, model_bands, periods_after
from ..forecast.models import Forecaster, no_future_values
from .features import row_features
from .registry import LoadedVersion, NoChampion, RegistrySource

log = logging.getLogger("mlkit.serve")


class NotReady(Exception):
    pass


class GroupLoadFailed(Exception):
    def __init__(self, key: tuple, reason: str):
        super().__init__(f"the model of group {list(key)} failed to load: {reason}")
        self.key, self.reason = key, reason


class VersionWatcher(ABC):
    """One served model's alias watcher: loads the version the alias points at, swaps it in when the
    alias moves, says whether (and what) it serves. ``open`` turns a version into what requests use."""

    imports: tuple[str, ...] = ()  # modules to import at start (seconds), not inside the first request

    def __init__(self, source: RegistrySource, poll_seconds: float = 30, job: str = ""):
        self.source, self.poll_seconds, self.job = source, poll_seconds, job or source.name
        self._current: LoadedVersion | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "starting: no model loaded yet"
        self.swaps = 0
        self.load_failures = 0

    @abstractmethod
    def open(self, version: str, run_id: str) -> LoadedVersion:
        """The loaded version requests use (each model kind says how it loads)."""

    @property
    def current(self) -> LoadedVersion:
        lv = self._current
        if lv is None:
            raise NotReady(self.status)
        return lv

    @property
    def ready(self) -> bool:
        return self._current is not None

    def refresh(self) -> bool:
        """Ask the registry where the alias points; load and swap if it moved. True if swapped."""
        try:
            version, run_id = self.source.current_version()
        except NoChampion as e:
            if self._current is None:
                self.status = f"not ready: {e}"
            else:  # keep serving what we have; say why the poll failed
                log.warning("alias poll failed, still serving version %s: %s", self._current.version, e)
            return False
        if self._current is not None and self._current.version == version:
            return False
        started = time.perf_counter()
        try:
            lv = self.open(version, run_id)
        except Exception as e:  # a bad new version must not take down the one being served
            self.status = (f"version {version} of {self.source.name!r} could not be loaded: {e}"
                           + (f"; still serving version {self._current.version}" if self._current else ""))
            log.error(self.status)
            return False
        self._current = lv  # the swap: one reference assignment, atomic under the GIL
        self.swaps += 1
        self.status = f"serving {lv.name} version {lv.version}"
        log.info("%s (loaded in %.0f ms)", self.status, 1000 * (time.perf_counter() - started))
        return True

    def start(self) -> "VersionWatcher":
        import importlib

        for module in self.imports:
            importlib.import_module(module)
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name=f"alias-poll-{self.job}", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the poller must outlive any single failure
                log.exception("alias poll crashed; retrying in %.0f s", self.poll_seconds)

    def stop(self, wait: float = 0.5) -> None:
        """Stop polling. The poller is a daemon thread: a poll stuck on an unreachable registry (MLflow's
        own retries) is not waited for beyond ``wait``, so shutting down never hangs on the registry."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)


class BundleService(VersionWatcher):
    """The forecast bundle: per-group models loaded on first use into an LRU (the meta model's)."""

    imports = ("mlforecast", "statsforecast", "xgboost")  # what unpickling a group's model needs

    def __init__(self, source: RegistrySource, keys: list[str], features: list[str], timestamp: str,
                 max_models: int, max_bytes: int, poll_seconds: float = 30, preload_groups: int = 0, job: str = ""):
        super().__init__(source, poll_seconds, job)
        self.keys, self.features, self.timestamp = list(keys), list(features), timestamp
        self.max_models, self.max_bytes = max_models, max_bytes
        self.preload_groups = preload_groups
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # loaded model -> its full-horizon forecast (models without features); gone with the model
        self._forecasts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._step_index: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {date: period}

    def open(self, version: str, run_id: str) -> LoadedVersion:
        lv = self.source.load(version, run_id, self.max_models, self.max_bytes)
        self._check_spec(lv)
        self._preload(lv)
        return lv

    def _check_spec(self, lv: LoadedVersion) -> None:
        spec = lv.models.spec
        if list(spec.keys) != self.keys:
            raise ValueError(f"the model's group keys {list(spec.keys)} are not the configured {self.keys}")
        missing = [f for f in spec.features if f not in self.features]
        if missing or spec.timestamp != self.timestamp:
            raise ValueError(f"the model needs features {list(spec.features)} and timestamp {spec.timestamp!r}; "
                             f"the configured request schema has {self.features} and {self.timestamp!r}")

    def _preload(self, lv: LoadedVersion) -> None:
        for key in lv.models.groups()[: min(self.preload_groups, self.max_models)]:
            lv.models.model(key)

    # ------------------------------------------------------------------ groups
    def _lock_for(self, version: str, ck: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get((version, ck))
            if lock is None:
                if len(self._locks) > 100_000:  # old versions' locks: drop them all, new ones come back
                    self._locks.clear()
                lock = self._locks[(version, ck)] = threading.Lock()
            return lock

    def model(self, lv: LoadedVersion, key: tuple[str, ...]) -> Any:
        """The group's model (a fitted Forecaster; a calendar booster in bundles before forecasters)."""
        lv.models.group_info(key)  # UnknownGroup (-> 404) before any lock or load
        with self._lock_for(lv.version, canonical(key)):
            try:
                return lv.models.model(key)
            except UnknownGroup:
                raise
            except Exception as e:  # corrupt/missing file or a model that cannot be read: this group only
                self.load_failures += 1
                failed = GroupLoadFailed(key, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
                log.warning("%s version %s: %s", lv.name, lv.version, failed)
                raise failed from None

    def is_loaded(self, lv: LoadedVersion, key: tuple[str, ...]) -> bool:
        """True if the group's model is in memory and answers without running a library forecast (a
        calendar booster, a model whose horizon is computed already, or one with features whose numpy
        predictor is built: ``Forecaster.quick``): the request can then run on the event loop. GroupModels has no public membership test; False only means the thread pool is used."""
        entry = getattr(lv.models, "_cache", {}).get(canonical(key))
        return entry is not None and (not isinstance(entry[0], Forecaster) or entry[0] in self._forecasts
                                      or (bool(entry[0].features) and entry[0].quick))

    def predict(self, lv: LoadedVersion, key: tuple[str, ...], rows: Rows) -> dict[str, np.ndarray]:
        """Forecasts at the rows' dates: {"prediction": ..., "lo_80": ..., ...}, one value per row.
        RowError (-> 422 naming the row and field) when a row cannot be forecast."""
        model = self.model(lv, key)
        if not isinstance(model, Forecaster):  # a calendar booster: no intervals
            x = row_features(rows.stamps, [[row.get(f) for f in lv.models.spec.features] for row in rows.features])
            return {"prediction": np.asarray(model.inplace_predict(x), dtype=float).reshape(len(x))}
        name = "/".join(key)
        steps = self._steps(model, rows)
        if steps is None:  # some date is not one of the horizon's periods: say which and why
            steps, errors = periods_after(name, model, rows.dates)
            for i, e in enumerate(errors):
                if e:
                    raise RowError(i, self.timestamp, e)
        if model.features and model.quick:  # the numpy predictor keeps no state: no lock needed
            fc = self._with_features(key, lv, model, rows, steps)
        elif model.features:
            # One forecast at a time per model: the fitted libraries' predict keeps state on the object.
            with self._lock_for(lv.version, canonical(key)):
                fc = self._with_features(key, lv, model, rows, steps)
        else:
            fc = self._forecasts.get(model)
            if fc is None:
                with self._lock_for(lv.version, canonical(key)):
                    fc = self._horizon(model)
        at = steps - 1
        return {c: fc[c][at] for c in fc}

    def _steps(self, model: Forecaster, rows: Rows) -> np.ndarray | None:
        """Each row's period number (1 = the first after the history), from the model's horizon dates
        (computed once per loaded model: a date_range per request cost ~0.3 ms); None when a date is
        not one of them (``periods_after`` then names the row and the reason)."""
        index = self._step_index.get(model)
        if index is None:
            dates = future_dates(model.last, model.freq, model.max_steps)
            index = self._step_index[model] = {d.to_pydatetime(): k for k, d in enumerate(dates, start=1)}
        try:
            return np.array([index[d] for d in rows.naive])
        except KeyError:
            return None

    def _horizon(self, model: Forecaster) -> dict[str, np.ndarray]:
        """A model without features forecasts the same horizon for every request: computed once per
        loaded model (3-15 ms measured per statsforecast/mlforecast call) and kept with it, so it is
        freed when the LRU evicts the model."""
        fc = self._forecasts.get(model)
        if fc is None:
            fc = self._forecasts[model] = _columns(model.forecast(model.max_steps), model.levels)
        return fc

    def _with_features(self, key: tuple[str, ...], lv: LoadedVersion, model: Forecaster, rows: Rows,
                       steps: np.ndarray) -> dict[str, np.ndarray]:
        """A model with features needs their values for every period from 1 to the furthest date asked
        (the first row of a period counts, as ``Forecaster.forecast`` reads a frame)."""
        name = "/".join(key)
        for i, values in enumerate(rows.features):
            missing = [f for f in model.features if values.get(f) is None]
            if missing:
                kind = lv.models.group_info(key).get("model_type") or "a model"
                raise RowError(i, missing[0], f"group {name} ({kind}) "
                               f"forecasts with {', '.join(model.features)}: give their values in every row")
        n = int(steps.max())
        x = np.full((n, len(model.features)), np.nan)
        for i in np.unique(steps, return_index=True)[1]:
            x[steps[i] - 1] = [rows.features[i][f] for f in model.features]
        gaps = np.isnan(x).any(axis=1)
        if gaps.any():  # periods between the history and the furthest date without a row
            need = future_dates(model.last, model.freq, n)
            raise RowError(None, "rows", f"group {name}: {no_future_values(model.features, need[gaps], need[-1])}; "
                           f"send a row for every period from the first one after the last trained period "
                           f"{model.last.date()} to the furthest date requested")
        fc = model.steps(n, model.exog(x))
        return {"prediction": fc["mean"], **{c: fc[c] for c in model_bands(model.levels)}}


class RowError(ValueError):
    """A request row the model cannot forecast: ``row`` (None: the rows as a whole) and ``field`` say where."""

    def __init__(self, row: int | None, field: str, message: str):
        super().__init__(message)
        self.row, self.field, self.message = row, field, message


class Rows:
    """The validated request rows: dates (naive UTC, as the models keep them) and feature values by name."""

    def __init__(self, stamps: list[dt.datetime], features: list[dict[str, float | None]]):
        self.stamps, self.features = stamps, features
        self.naive = [_utc(t) for t in stamps]

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.naive)


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is None else t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _columns(fc: pd.DataFrame, levels: list[int]) -> dict[str, np.ndarray]:
    return {"prediction": fc["mean"].to_numpy(float), **{c: fc[c].to_numpy(float) for c in model_bands(levels)}}
