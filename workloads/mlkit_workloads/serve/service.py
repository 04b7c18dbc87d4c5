"""The models behind the API: the alias's current version, swapped atomically when the alias moves.

A request takes one reference to the current :class:`LoadedVersion` and uses it to the end, so a
swap never changes the model under a request and never drops one; the old version is freed once
its last request finishes. Group models load on first use (the meta model's LRU bounds memory);
a per-group lock makes concurrent first requests for one group share one load.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from ..forecast.meta_model import UnknownGroup, canonical
from .registry import LoadedVersion, NoChampion, RegistrySource

log = logging.getLogger("mlkit.serve")


class NotReady(Exception):
    pass


class GroupLoadFailed(Exception):
    def __init__(self, key: tuple, reason: str):
        super().__init__(f"the model of group {list(key)} failed to load: {reason}")
        self.key, self.reason = key, reason


class ModelService:
    def __init__(self, source: RegistrySource, keys: list[str], features: list[str], timestamp: str,
                 max_models: int, max_bytes: int, poll_seconds: float = 30, preload_groups: int = 0):
        self.source = source
        self.keys, self.features, self.timestamp = list(keys), list(features), timestamp
        self.max_models, self.max_bytes = max_models, max_bytes
        self.poll_seconds, self.preload_groups = poll_seconds, preload_groups
        self._current: LoadedVersion | None = None
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "starting: no model loaded yet"
        self.swaps = 0
        self.load_failures = 0

    # ------------------------------------------------------------------ versions
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
            lv = self.source.load(version, run_id, self.max_models, self.max_bytes)
            self._check_spec(lv)
            self._preload(lv)
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

    def _check_spec(self, lv: LoadedVersion) -> None:
        spec = lv.models.spec
        if list(spec["keys"]) != self.keys:
            raise ValueError(f"the model's group keys {spec['keys']} are not the configured {self.keys}")
        missing = [f for f in spec["features"] if f not in self.features]
        if missing or spec["timestamp"] != self.timestamp:
            raise ValueError(f"the model needs features {spec['features']} and timestamp {spec['timestamp']!r}; "
                             f"the configured request schema has {self.features} and {self.timestamp!r}")

    def _preload(self, lv: LoadedVersion) -> None:
        for key in lv.models.groups()[: min(self.preload_groups, self.max_models)]:
            lv.models.booster(key)

    def start(self) -> "ModelService":
        import xgboost  # noqa: F401  (imported here, ~1.5 s, not inside the first request)

        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="alias-poll", daemon=True)
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

    # ------------------------------------------------------------------ groups
    def _lock_for(self, version: str, ck: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get((version, ck))
            if lock is None:
                if len(self._locks) > 100_000:  # old versions' locks: drop them all, new ones come back
                    self._locks.clear()
                lock = self._locks[(version, ck)] = threading.Lock()
            return lock

    def booster(self, lv: LoadedVersion, key: tuple[str, ...]) -> Any:
        lv.models.group_info(key)  # UnknownGroup (-> 404) before any lock or load
        with self._lock_for(lv.version, canonical(key)):
            try:
                return lv.models.booster(key)
            except UnknownGroup:
                raise
            except Exception as e:  # corrupt/missing file or a booster xgboost cannot read: this group only
                self.load_failures += 1
                raise GroupLoadFailed(key, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None

    def is_loaded(self, lv: LoadedVersion, key: tuple[str, ...]) -> bool:
        """True if the group's booster is in memory (a request can then run on the event loop).
        GroupModels has no public membership test; a miss here only means the thread pool is used."""
        return canonical(key) in getattr(lv.models, "_cache", ())

    def predict(self, lv: LoadedVersion, key: tuple[str, ...], x: np.ndarray) -> np.ndarray:
        """``x``: the model's input matrix (columns as forecast.features.make_features builds them)."""
        booster = self.booster(lv, key)
        return np.asarray(booster.inplace_predict(x), dtype=float).reshape(len(x))
