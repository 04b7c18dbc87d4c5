"""The routing meta model: one MLflow model in front of every group's fitted forecaster.

Layout of a bundle directory (logged as one artifact, so a run logs one model, not thousands)::

    index.json     {"spec": BundleSpec (bundle_spec.py), "groups": {key: {file, bytes, ...}}}
    models/00000.ubj ...                      # write_bundle(..., packed=False): one file per group
    models.bin                                # packed=True: every booster in one file, each at
                                              # {file, offset, length, codec} in the index

A group entry of ``"kind": "forecaster"`` holds a pickled :class:`forecast.models.Forecaster`
(statsforecast or mlforecast, fitted on the group's whole history: it knows its last timestamp and
frequency, so it forecasts the periods after it); an entry without a kind is a bare XGBoost booster
on calendar features (bundles of earlier versions, and the serving tests' small bundles). The
pickles are this job's own artifacts, read only from the registry the job wrote to.

train_many writes the packed form with zstd-compressed models: one artifact upload instead of
one per group (a thousand small uploads were most of the run's tracking time) and ~4x fewer bytes
to move; a booster is still read alone (seek + read + decompress, well under a millisecond).

:class:`GroupModels` is plain Python (no MLflow) so the routing and the cache bound can be
tested alone and reused by the scoring service:

    models = GroupModels(path, max_models=256, max_bytes=512 * 2**20)
    models.groups()                       # [("S01", "I01"), ...]
    models.group_info(("S01", "I01"))     # status, trained_at, run_id, metrics, bytes
    models.predict_group(("S01", "I01"), df)   # np.ndarray, one point forecast per row (future dates)
    models.forecast_group(("S01", "I01"), steps, future)  # ds, mean, lo_80, hi_80, ... after the history
    models.predict(df)                    # any mix of groups -> keys, timestamp, prediction, intervals, error
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

from .bundle_spec import BundleSpec
from .features import make_features
from .frequency import steps_ahead
from .models import Forecaster

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


PACK = "models.bin"
FORECASTER = "forecaster"
CODEC = "zstd"
_LOCATION = ("file", "offset", "length", "codec")  # where a booster is stored: not part of group_info


def compress(blob: bytes) -> bytes:
    """A booster as ``write_bundle(..., codec="zstd")`` takes it. zstd level 1 through pyarrow (a
    dependency already): measured on 130 kB ubj boosters 0.4 ms and 0.27 of the size, where zlib
    level 1 took ~1-2 ms for 0.31."""
    import pyarrow as pa

    return pa.Codec(CODEC, 1).compress(blob, asbytes=True)


def decompress(blob: bytes, size: int) -> bytes:
    import pyarrow as pa

    return pa.Codec(CODEC).decompress(blob, decompressed_size=size, asbytes=True)


def write_bundle(directory: Path, spec: BundleSpec | dict, groups: Iterable[tuple[GroupKey, bytes, dict]],
                 packed: bool = False, codec: str | None = None) -> dict:
    """Write boosters + index. ``groups`` yields (key, booster bytes, info). Returns the index.

    ``packed``: all boosters in one file (``models.bin``) instead of one file per group.
    ``codec="zstd"``: the bytes given are already compressed with :func:`compress` (train_many
    compresses on the workers, in parallel); ``info["bytes"]`` must then give the booster's raw
    size, which is what the LRU's byte bound counts.
    """
    if codec not in (None, CODEC):
        raise ValueError(f"unknown codec {codec!r}")
    if codec and not packed:  # a models/*.ubj file is a booster anyone can load: keep it one
        raise ValueError("compressed boosters go in a packed bundle (packed=True)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = spec if isinstance(spec, BundleSpec) else BundleSpec.from_dict(spec)
    index: dict[str, Any] = {"spec": spec.as_dict(), "groups": {}}
    pack = open(directory / PACK, "wb") if packed else None
    try:
        for i, (key, blob, info) in enumerate(groups):
            size = int(info["bytes"]) if codec else len(blob)
            if pack is not None:
                where = {"file": PACK, "offset": pack.tell(), "length": len(blob)}
                pack.write(blob)
            else:
                where = {"file": f"models/{i:05d}.ubj"}
                (directory / "models").mkdir(exist_ok=True)
                (directory / where["file"]).write_bytes(blob)
            if codec:
                where["codec"] = codec
            index["groups"][canonical(key)] = {**info, **where, "bytes": size}
    finally:
        if pack is not None:
            pack.close()
    (directory / "index.json").write_text(json.dumps(index, indent=1, default=str))
    return index


class GroupModels:
    """Group -> booster, loaded lazily into an LRU bounded by model count and by bytes."""

    def __init__(self, directory: str | Path, max_models: int | None = None, max_bytes: int | None = None):
        self.directory = Path(directory)
        index = json.loads((self.directory / "index.json").read_text())
        self.spec = BundleSpec.from_dict(index["spec"])
        self._index: dict[str, dict] = index["groups"]
        self.max_models = max_models or self.spec.lru_max_models or 256
        self.max_bytes = max_bytes or self.spec.lru_max_bytes or 512 * 2**20
        self._cache: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._stats = {"hits": 0, "misses": 0, "evictions": 0}
        self._lock = threading.Lock()  # the scoring service calls this from several threads

    @property
    def keys(self) -> list[str]:
        return list(self.spec.keys)

    def groups(self) -> list[GroupKey]:
        return [tuple(json.loads(k)) for k in self._index]

    def group_info(self, key: Any) -> dict:
        info = self._index.get(canonical(key))
        if info is None:
            raise UnknownGroup(tuple(json.loads(canonical(key))))
        return {k: v for k, v in info.items() if k not in _LOCATION}

    def model(self, key: Any):
        """The group's model (a Forecaster, or a Booster for an entry without a kind), through the LRU."""
        ck = canonical(key)
        with self._lock:
            if ck in self._cache:
                self._cache.move_to_end(ck)
                self._stats["hits"] += 1
                return self._cache[ck][0]
        info = self._index.get(ck)
        if info is None:
            raise UnknownGroup(tuple(json.loads(ck)))
        blob = self._read(info)
        if info.get("kind") == FORECASTER:
            import cloudpickle

            model = cloudpickle.loads(bytes(blob))
        else:
            import xgboost as xgb

            # nthread=1 in the global (per-thread) config too: loading runs OpenMP regions sized to all
            # cores otherwise, measured 3-12 ms per booster on a busy 2-core machine vs 0.5 ms.
            with xgb.config_context(nthread=1):
                model = xgb.Booster(params={"nthread": 1}, model_file=blob)
        size = len(blob)
        with self._lock:
            self._stats["misses"] += 1
            self._cache[ck] = (model, size)
            self._bytes += size
            # Keep at least the model just loaded, even if alone it is over the byte bound.
            while len(self._cache) > 1 and (len(self._cache) > self.max_models or self._bytes > self.max_bytes):
                _, (_, freed) = self._cache.popitem(last=False)
                self._bytes -= freed
                self._stats["evictions"] += 1
        return model

    booster = model  # the name the serving service and older callers use

    def _read(self, info: dict) -> bytearray:
        path = self.directory / info["file"]
        if "offset" in info:  # packed: read just this model's bytes
            with open(path, "rb") as f:
                f.seek(int(info["offset"]))
                blob = f.read(int(info["length"]))
        else:
            blob = path.read_bytes()
        if info.get("codec") == CODEC:
            blob = decompress(blob, int(info["bytes"]))
        return bytearray(blob)

    def _features(self, df: pd.DataFrame) -> pd.DataFrame:
        return make_features(df, self.spec.timestamp, list(self.spec.features))

    def forecast_group(self, key: Any, steps: int | None = None, future: pd.DataFrame | None = None) -> pd.DataFrame:
        """The ``steps`` periods (default: the horizon) after the group's history: ds, mean, lo_L, hi_L.
        ``future``: ds + the features for those periods, when the group's model uses features."""
        model = self.model(key)
        if not isinstance(model, Forecaster):
            raise TypeError(f"group {key!r}: a calendar booster has no history to forecast from")
        return model.forecast(steps or model.max_steps, future)

    def predict_group(self, key: Any, df: pd.DataFrame) -> np.ndarray:
        """One point forecast per row of ``df`` (its timestamps; its features for a model that uses them).
        ValueError when a date is not one of the periods the model can forecast."""
        model = self.model(key)
        if not isinstance(model, Forecaster):
            return _predict(model, self._features(df))
        fc, errors = self._at(key, model, df)
        if any(errors):
            raise ValueError(next(e for e in errors if e))
        return fc["mean"].to_numpy(float)

    def _at(self, key: Any, model: "Forecaster", df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """Forecasts at ``df``'s timestamps (NaN rows where not possible) and one error per row ('' if none).
        numpy, not pandas, around the model's own forecast: per group this was ~30 % of a baseline
        group's predict (a frame of NaNs, ``.loc`` assignment, a future frame built even when unused)."""
        name = "/".join(map(str, _tuple(key)))
        dates = _naive_utc(df[self.spec.timestamp])
        steps, errors = periods_after(name, model, pd.DatetimeIndex(dates))
        good = np.array([not e for e in errors], dtype=bool)
        columns = ["mean", *model_bands(model.levels)]
        values = np.full((len(df), len(columns)), np.nan)
        if good.any():
            future = None
            if model.features:
                future = df.assign(ds=dates.to_numpy())[["ds", *[f for f in model.features if f in df.columns]]]
            try:
                fc = model.forecast(int(steps[good].max()), future)
            except ValueError as e:  # e.g. missing future feature values: every row of the group
                return pd.DataFrame(values, columns=columns), [f"group {name}: {e}"] * len(df)
            values[good] = fc[columns].to_numpy(float)[steps[good] - 1]
        return pd.DataFrame(values, columns=columns), errors

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of any groups -> keys, timestamp, prediction, lo_L/hi_L and error (empty when the row was
        forecast; else why not: unknown group, a date outside the forecast periods, missing features)."""
        keys, ts = self.keys, self.spec.timestamp
        out = df[keys + [ts]].copy()
        bands = self.spec.bands
        cols = {c: np.full(len(df), np.nan) for c in ["prediction", *bands]}
        error = np.full(len(df), "", dtype=object)
        if len(df):
            x = None
            for key, rows in df.groupby(keys, sort=False).indices.items():
                key = _tuple(key)
                if canonical(key) not in self._index:
                    error[rows] = f"no model for group {'/'.join(map(str, key))}"
                    continue
                model = self.model(key)
                if isinstance(model, Forecaster):
                    fc, errs = self._at(key, model, df.iloc[rows])
                    cols["prediction"][rows] = fc["mean"].to_numpy(float)
                    for c in bands:
                        if c in fc:
                            cols[c][rows] = fc[c].to_numpy(float)
                    error[rows] = errs
                else:
                    x = self._features(df) if x is None else x  # once per batch, then sliced by group
                    cols["prediction"][rows] = _predict(model, x.iloc[rows])
        for c, v in cols.items():
            out[c] = v
        out["error"] = error
        return out

    def cache_info(self) -> dict:
        with self._lock:
            return {"loaded": len(self._cache), "bytes": self._bytes, **self._stats,
                    "max_models": self.max_models, "max_bytes": self.max_bytes}


def periods_after(name: str, model: "Forecaster", dates: pd.DatetimeIndex) -> tuple[np.ndarray, list[str]]:
    """How many periods after the model's history each (naive UTC) date is, and one error per date
    ('' when the model can forecast it). ``name``: the group as the messages show it (``S01/I02``).
    Shared by ``predict``/``predict_group`` and the scoring service (which maps an error to a 422)."""
    steps = steps_ahead(model.last, dates, model.freq)
    errors = [""] * len(dates)
    for i, (d, k) in enumerate(zip(dates, steps)):
        if k == 0:
            errors[i] = f"group {name}: {d.date()} is not after the last trained period {model.last.date()}"
        elif k < 0:
            errors[i] = f"group {name}: {d} is not a {model.freq} period"
        elif k > model.max_steps:
            errors[i] = (f"group {name}: {d.date()} is {k} periods after the last trained period "
                         f"{model.last.date()} (at most {model.max_steps})")
    return steps, errors


def model_bands(levels: list[int]) -> list[str]:
    return [f"{side}_{lv}" for lv in levels for side in ("lo", "hi")]


def _tuple(key: Any) -> GroupKey:
    return key if isinstance(key, tuple) else (key,)


def _naive_utc(col: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (how the forecasters keep them; pyfunc hands naive datetimes over)."""
    if pd.api.types.is_datetime64_dtype(col) and getattr(col.dtype, "tz", None) is None:
        return pd.Series(col.to_numpy("datetime64[ns]"), index=col.index)  # naive means UTC: as is
    out = pd.to_datetime(col, utc=True)
    return pd.Series(out.dt.tz_localize(None).to_numpy(), index=col.index)


def _predict(booster, x: pd.DataFrame) -> np.ndarray:
    # inplace_predict: no DMatrix (whose default thread pool costs ~7 ms per call on 2 cores),
    # and a DataFrame keeps XGBoost's check of the feature names against the trained ones.
    return booster.inplace_predict(x)


try:
    import mlflow.pyfunc as _pyfunc

    _Base = _pyfunc.PythonModel
except ImportError:  # the pure parts stay importable without MLflow
    _Base = object


# The pyfunc artifact that holds the bundle: what train_many logs and every reader opens.
BUNDLE_ARTIFACT = "bundle"


class NotABundle(ValueError):
    pass


def bundle_dir(model_root: Path) -> Path:
    """The bundle inside a downloaded ManyModels directory (the one reader of its MLmodel file:
    batch scoring, the monitor and the scoring service)."""
    import yaml

    meta = yaml.safe_load((model_root / "MLmodel").read_text())
    artifacts = (meta.get("flavors", {}).get("python_function", {}).get("artifacts") or {})
    rel = (artifacts.get(BUNDLE_ARTIFACT) or {}).get("path")
    if not rel or not (model_root / rel / "index.json").is_file():
        raise NotABundle(f"{model_root} is not a many-models bundle (no {BUNDLE_ARTIFACT!r} artifact with an "
                         "index.json)")
    return model_root / rel


class ManyModels(_Base):  # type: ignore[misc, valid-type]
    """mlflow.pyfunc model: ``predict`` routes each row to its group's model.

    Request: rows of the group keys, the timestamp (future periods: 1 to ``horizon`` periods after
    the group's last trained period, on the frequency's grid) and, when the model was trained with
    features, their values for those periods. Response: the keys, the timestamp, ``prediction``,
    ``lo_L``/``hi_L`` per interval level and ``error`` (empty, or why the row has no forecast)."""

    models: GroupModels

    def __getstate__(self) -> dict:
        # Everything is rebuilt from the artifacts in load_context; MLflow may have called it
        # already (input example validation), and a loaded cache must not be pickled.
        return {}

    def load_context(self, context) -> None:
        self.models = GroupModels(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.models.predict(model_input)

    # Conveniences for the serving service: the same API as GroupModels.
    def predict_group(self, key: Any, df: pd.DataFrame) -> np.ndarray:
        return self.models.predict_group(key, df)

    def forecast_group(self, key: Any, steps: int | None = None, future: pd.DataFrame | None = None) -> pd.DataFrame:
        return self.models.forecast_group(key, steps, future)

    def groups(self) -> list[GroupKey]:
        return self.models.groups()

    def group_info(self, key: Any) -> dict:
        return self.models.group_info(key)
