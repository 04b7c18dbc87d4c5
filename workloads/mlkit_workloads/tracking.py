"""Thin MLflow helpers shared by the tasks: reachability, pip requirements, aliases, and the
record of what a model version was trained on (so an identical re-run skips training)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import TrackingUnreachable, WorkloadError
from .registry_contract import CHAMPION, champion_of


def check_reachable() -> str:
    """Fail early, with the URI in the message, if the tracking server does not answer."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).read()
        except OSError as e:
            raise TrackingUnreachable(uri, getattr(e, "reason", None) or str(e)) from None
    try:
        mlflow.search_experiments(max_results=1)
    except MlflowException as e:
        raise TrackingUnreachable(uri, str(e).splitlines()[0]) from None
    return uri


def pip_requirements(*extra: str) -> list[str]:
    """Pinned to what is installed, so a loaded model gets the libraries it was trained with."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlflow-skinny", "xgboost-cpu", "pandas", "numpy", "pyarrow", *extra):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            if dist == "xgboost-cpu":
                out.append(f"xgboost=={version('xgboost')}")
    return out


def champion_version(model: str) -> str | None:
    from mlflow import MlflowClient

    return champion_of(MlflowClient(), model)


def require_champion(model: str) -> str:
    v = champion_version(model)
    if v is None:
        raise WorkloadError(f"registered model {model!r} has no '{CHAMPION}' alias yet: "
                            "train and promote a version first")
    return v


# ------------------------------------------------------------------ idempotent training
#
# A model version is tagged with what it was trained on: the data table (path + Delta version) and
# a hash of the job's settings that shape the model. A re-run on the same data with the same
# settings finds that version before training and reuses it (task values as if it had trained), so
# a retried or repeated job registers no second version and moves no alias. ``--force`` trains anyway.

TRAINING_KEY = "mlkit_training_key"  # one tag to search by; the parts are tagged beside it, readable
# Settings that do not change the trained model: the gates decide afterwards, the source is named by
# the data table's path and version, scoring reads the model.
NOT_TRAINING = ("gates", "source", "score_periods")


def settings_hash(section: Any, exclude: tuple[str, ...] = NOT_TRAINING) -> str:
    """sha256 (16 hex) of a job's settings section (a pydantic model or a dict) without ``exclude``."""
    data = section.model_dump(mode="json") if hasattr(section, "model_dump") else dict(section)
    data = {k: v for k, v in data.items() if k not in exclude}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def training_tags(section: Any, data_path: str, data_version: int) -> dict[str, str]:
    """The tags a trained model version carries (``record_training``) and a re-run looks for."""
    parts = {"mlkit_data_path": str(data_path), "mlkit_data_version": str(int(data_version)),
             "mlkit_settings_hash": settings_hash(section)}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return {TRAINING_KEY: key, **parts}


def trained_version(model: str, tags: dict[str, str]):
    """The newest version of ``model`` tagged with these training tags, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    key = tags[TRAINING_KEY]
    try:
        found = client.search_model_versions(f"name = '{model}' and tags.{TRAINING_KEY} = '{key}'")
    except MlflowException:
        # Registries without tag filters (Unity Catalog): list the model's versions and compare here.
        try:
            found = [v for v in client.search_model_versions(f"name = '{model}'")
                     if (v.tags or {}).get(TRAINING_KEY) == key]
        except MlflowException:
            return None  # no such model yet
    found = [v for v in found if (v.tags or {}).get(TRAINING_KEY) == key]
    return max(found, key=lambda v: int(v.version), default=None)


def record_training(model: str, version: str, run_id: str, tags: dict[str, str]) -> None:
    """Tag the version (and its run) with what it was trained on. Call it last, after registration:
    a run stopped before this point left no tag, and its re-run trains again."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(model, version, k, v)
        client.set_tag(run_id, k, v)


def reuse_training(rt, model: str, tags: dict[str, str]) -> dict | None:
    """Before training: if ``model`` already has a version trained on this data with these settings
    (and ``rt.force`` is off), say so, set the task values a training would have set, and return them
    (``outcome: skipped``). None means: train."""
    if getattr(rt, "force", False):
        return None
    mv = trained_version(model, tags)
    if mv is None:
        return None
    note = (f"skipped training: {model} v{mv.version} was already trained on {tags['mlkit_data_path']} "
            f"v{tags['mlkit_data_version']} with the same settings (run {mv.run_id}); pass --force to train again")
    rt.say(note)
    out = {"outcome": "skipped", "note": note, "run_id": mv.run_id, "model_name": model,
           "model_version": str(mv.version), "data_table_version": int(tags["mlkit_data_version"])}
    for k, v in out.items():
        rt.context.set(k, v)
    return out
