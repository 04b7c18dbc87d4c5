"""The routing meta model: one MLflow model in front of every group's booster.

Layout of a bundle directory (logged as one artifact, so a run logs one model, not thousands)::

    index.json     {"spec": {keys, timestamp, features, ...}, "groups": {key: {file, bytes, ...}}}
    models/00000.ubj ...

:class:`GroupModels` is plain Python (no MLflow) so the routing and the cache bound can be
tested alone and reused by the scoring service:

    models = GroupModels(path, max_models=256, max_bytes=512 * 2**20)
    models.groups()                       # [("S01", "I01"), ...]
    models.group_info(("S01", "I01"))     # status, trained_at, run_id, metrics, bytes
    models.predict_group(("S01", "I01"), df)   # np.ndarray, one prediction per row of df
    models.predict(df)                    # any mix of groups -> DataFrame with `prediction`
    models.cache_info()                   # loaded, bytes, hits, misses, evictions

:class:`ManyModels` is the ``mlflow.pyfunc.PythonModel`` wrapper; ``load_model(uri)
.unwrap_python_model().models`` gives the :class:`GroupModels` behind a registered version.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .features import make_features

GroupKey = tuple[str, ...]


class UnknownGroup(KeyError):
    def __init__(self, key: GroupKey):
        super().__init__(f"no model for group {key!r}")
        self.key = key


def canonical(key: Any) -> str:
    """A group key as the index stores it: a JSON list of strings."""
    if isinstance(key, str):
        key = (key,)
    return json.dumps([str(k) for k in key])


def write_bundle(directory: Path, spec: dict, groups: Iterable[tuple[GroupKey, bytes, dict]]) -> dict:
    """Write boosters + index. ``groups`` yields (key, booster bytes, info). Returns the index."""
    (directory / "models").mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"spec": spec, "groups": {}}
    for i, (key, blob, info) in enumerate(groups):
        file = f"models/{i:05d}.ubj"
        (directory / file).write_bytes(blob)
        index["groups"][canonical(key)] = {**info, "file": file, "bytes": len(blob)}
    (directory / "index.json").write_text(json.dumps(index, indent=1, default=str))
    return index


class GroupModels:
    """Group -> booster, loaded lazily into an LRU bounded by model count and by bytes."""

    def __init__(self, directory: str | Path, max_models: int | None = None, max_bytes: int | None = None):
        self.directory = Path(directory)
        index = json.loads((self.directory / "index.json").read_text())
        self.spec: dict = index["spec"]
        self._index: dict[str, dict] = index["groups"]
        self.max_models = max_models or int(self.spec.get("lru_max_models", 256))
        self.max_bytes = max_bytes or int(self.spec.get("lru_max_bytes", 512 * 2**20))
        self._cache: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._stats = {"hits": 0, "misses": 0, "evictions": 0}
        self._lock = threading.Lock()  # the scoring service calls this from several threads

    @property
    def keys(self) -> list[str]:
        return list(self.spec["keys"])

    def groups(self) -> list[GroupKey]:
        return [tuple(json.loads(k)) for k in self._index]

    def group_info(self, key: Any) -> dict:
        info = self._index.get(canonical(key))
        if info is None:
            raise UnknownGroup(tuple(json.loads(canonical(key))))
        return {k: v for k, v in info.items() if k != "file"}

    def booster(self, key: Any):
        import xgboost as xgb

        ck = canonical(key)
        with self._lock:
            if ck in self._cache:
                self._cache.move_to_end(ck)
                self._stats["hits"] += 1
                return self._cache[ck][0]
        info = self._index.get(ck)
        if info is None:
            raise UnknownGroup(tuple(json.loads(ck)))
        blob = bytearray((self.directory / info["file"]).read_bytes())
        booster = xgb.Booster(params={"nthread": 1}, model_file=blob)
        size = len(blob)
        with self._lock:
            self._stats["misses"] += 1
            self._cache[ck] = (booster, size)
            self._bytes += size
            # Keep at least the model just loaded, even if alone it is over the byte bound.
            while len(self._cache) > 1 and (len(self._cache) > self.max_models or self._bytes > self.max_bytes):
                _, (_, freed) = self._cache.popitem(last=False)
                self._bytes -= freed
                self._stats["evictions"] += 1
        return booster

    def predict_group(self, key: Any, df: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        booster = self.booster(key)
        x = make_features(df, self.spec["timestamp"], self.spec["features"])
        return booster.predict(xgb.DMatrix(x))

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of any groups -> keys, timestamp, prediction (NaN where the group has no model)."""
        keys, ts = self.keys, self.spec["timestamp"]
        out = df[keys + [ts]].copy()
        out["prediction"] = np.nan
        for key, rows in df.groupby(keys, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            if canonical(key) in self._index:
                out.loc[rows.index, "prediction"] = self.predict_group(key, rows)
        return out

    def cache_info(self) -> dict:
        with self._lock:
            return {"loaded": len(self._cache), "bytes": self._bytes, **self._stats,
                    "max_models": self.max_models, "max_bytes": self.max_bytes}


try:
    import mlflow.pyfunc as _pyfunc

    _Base = _pyfunc.PythonModel
except ImportError:  # the pure parts stay importable without MLflow
    _Base = object


class ManyModels(_Base):  # type: ignore[misc, valid-type]
    """mlflow.pyfunc model: ``predict`` routes each row to its group's booster."""

    models: GroupModels

    def __getstate__(self) -> dict:
        # Everything is rebuilt from the artifacts in load_context; MLflow may have called it
        # already (input example validation), and a loaded cache must not be pickled.
        return {}

    def load_context(self, context) -> None:
        self.models = GroupModels(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.models.predict(model_input)

    # Conveniences for the serving service: the same API as GroupModels.
    def predict_group(self, key: Any, df: pd.DataFrame) -> np.ndarray:
        return self.models.predict_group(key, df)

    def groups(self) -> list[GroupKey]:
        return self.models.groups()

    def group_info(self, key: Any) -> dict:
        return self.models.group_info(key)
