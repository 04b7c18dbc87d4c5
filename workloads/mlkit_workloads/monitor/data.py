"""Inputs of the monitoring job: served rows (from the inference log) and the reference (the
training data of the model version that served them, found through its MLflow run)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import WorkloadError
from ..forecast.meta_model import GroupModels, bundle_dir
from ..runtime import TABLES

INFERENCE_LOG = "inference_log"  # written by the service's Delta sink (local)


def logged_events(rt, ms, since: pd.Timestamp) -> tuple[pd.DataFrame, str]:
    """The logged inference events (inference-log columns, ``inference_event.event_table``) and where they came from.

    ``monitoring.capture_path`` set (cloud: the stacks set it): the Event Hubs Capture archive.
    Otherwise the local Delta table the service's Delta sink writes. Empty when nothing was logged.
    """
    if ms.capture_path:
        if rt.spark is None:
            raise WorkloadError(f"monitoring.capture_path is {ms.capture_path!r}: reading an Event Hubs Capture "
                                "archive needs Spark, and this task has no Spark session")
        from .capture import read_capture

        return read_capture(rt.spark, ms.capture_path, since), ms.capture_path
    try:
        return rt.tables.read_pandas(INFERENCE_LOG), rt.tables.path(INFERENCE_LOG)
    except FileNotFoundError:
        return pd.DataFrame(), rt.tables.path(INFERENCE_LOG)  # nothing served yet


def served_rows(events: pd.DataFrame, since: pd.Timestamp) -> pd.DataFrame:
    """One row per predicted row since ``since``: model name and version, the group's keys (the forecast's;
    none for a single model), the inputs as columns, ``prediction`` (the score the model answered)."""
    if events.empty:
        return pd.DataFrame()
    events = events[pd.to_datetime(events["ts"], utc=True) >= since]
    if "status" in events:  # rejected requests are logged too (no inputs, no predictions): not served rows
        events = events[events["status"].fillna(200).astype(int) == 200]
    out: list[dict] = []
    for ev in events.itertuples(index=False):
        group = json.loads(ev.group)
        for row, pred in zip(json.loads(ev.inputs), json.loads(ev.outputs)):
            out.append({"model_name": ev.model_name, "model_version": str(ev.model_version),
                        **{k: str(v) for k, v in group.items()}, **row, "prediction": pred})
    return pd.DataFrame(out)


@dataclass
class Reference:
    """What a model version was trained on: its training rows and, per group, its backtest predictions."""

    rows: pd.DataFrame
    label: str
    backtest: dict[tuple[str, ...], np.ndarray]  # group -> the winner's backtest point forecasts
    backtest_label: str


def training_reference(tables, name: str, version: str, keys: list[str], backtest: bool = True) -> Reference:
    """The training data of ``name`` version ``version`` (the table version its run recorded) and, for
    the forecast (``backtest``), the backtest predictions its training run wrote to the group-metrics
    table beside it."""
    from mlflow import MlflowClient

    client = MlflowClient()
    mv = client.get_model_version(name, version)
    params = client.get_run(mv.run_id).data.params
    table, table_version = params.get("data_table"), params.get("data_table_version")
    if not table or table_version is None:
        raise WorkloadError(f"{name} version {version}: its run {mv.run_id} records no data_table/"
                            "data_table_version, so its training data cannot be found")
    # The run records where the table was (data_path): a `--data` run keeps its tables in a folder
    # of their own, so the monitor job's tables root (where the service logs) is not always it.
    where = [(tables, table)]
    recorded = params.get("data_path")
    if recorded and recorded.rstrip("/") != tables.path(table).rstrip("/"):
        parent, _, leaf = recorded.rstrip("/").rpartition("/")
        where.insert(0, (_store_at(tables, parent), leaf))
    for store, name_in_store in where:
        try:
            rows = store.read_pandas(name_in_store, int(table_version))
        except FileNotFoundError:
            continue
        backtest, label = backtest_predictions(store, name, version, keys) if backtest else ({}, "")
        return Reference(rows, f"{store.path(name_in_store)} v{table_version}", backtest, label)
    raise WorkloadError(f"{name} version {version} was trained on {table} v{table_version} "
                        f"({recorded or 'no path recorded'}), which is not there any more nor under {tables.root}")


BACKTEST_MEAN = 3  # a backtest row is [ds, cutoff, y, mean, lo, hi] (forecast.train.GroupResult.backtest)


def backtest_predictions(store, name: str, version: str, keys: list[str]) -> tuple[dict, str]:
    """Per group, the point forecasts of the version's rolling-origin backtest (the group-metrics
    table its training run wrote, in the same store as its training data). Empty when the table or
    the version's rows are not there (a version trained before backtests): no prediction verdict."""
    table = TABLES["group_metrics"]
    try:
        metrics = store.read_pandas(table)
    except FileNotFoundError:
        return {}, f"{store.path(table)} (not found)"
    if not {"model_name", "model_version", "backtest", *keys} <= set(metrics.columns):
        return {}, f"{store.path(table)} (no backtest column)"
    rows = metrics[(metrics.model_name == name) & (metrics.model_version.astype(str) == str(version))
                   & (metrics.status == "ok")]
    out = {}
    for r in rows.itertuples(index=False):
        bt = json.loads(getattr(r, "backtest") or "[]")
        out[tuple(str(getattr(r, k)) for k in keys)] = np.array([row[BACKTEST_MEAN] for row in bt], dtype=float)
    return out, f"{store.path(table)}, {len(out)} group(s) of version {version}"


def _store_at(tables, root: str):
    """A store of the same kind as ``tables`` rooted elsewhere (local delta-rs, or Delta on Spark)."""
    from ..tables import SparkDeltaStore

    if isinstance(tables, SparkDeltaStore):
        return SparkDeltaStore(tables.spark, root)
    return type(tables)(root)


def version_models(name: str, version: str, directory: Path | None = None) -> GroupModels:
    """The version's group models (for predictions on the reference rows)."""
    import mlflow

    target = Path(directory or tempfile.mkdtemp(prefix="mlkit-monitor-"))
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(target))
    return GroupModels(bundle_dir(Path(local)))
