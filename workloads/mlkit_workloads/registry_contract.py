"""The registry contract: what the jobs, the scoring service and the kit's promotion agree on.

One place for the alias names, the tags a model version and its run carry, the one way the
``champion`` alias moves, and which registered models the scoring service serves. Every
``MlflowClient`` call goes through the client given (the local registry, one of two registries in
``mlkit promote``, or Unity Catalog): nothing here picks a registry itself.

The champion of each registered model carries the alias ``champion`` and the model-version tag
``promotion`` = passed|failed; its training run has the tags ``promotion`` and
``promotion.reasons``, the params ``data_table``/``data_table_version`` and the metrics. The
version it replaced stays reachable as ``previous_champion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CHAMPION, PREVIOUS = "champion", "previous_champion"
PROMOTION = "promotion"                  # version tag and run tag: passed | failed
PROMOTION_REASONS = "promotion.reasons"  # run tag: the gates' reasons, one per line
PROMOTED_FROM = "mlkit.promoted_from"    # version tag of a promoted copy: <source env>/<name>/<version>
PASSED, FAILED = "passed", "failed"

# The jobs that register a model, and how the service serves each: a bundle of per-group models
# behind a routing meta model (lazy per-group LRU), or one model for every request.
JOBS: dict[str, Literal["bundle", "single"]] = {"forecast": "bundle", "classifier": "single"}


def champion_of(client, name: str) -> str | None:
    """The version ``champion`` points at, or None (no such model, or no champion yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def move_champion(client, name: str, version: str) -> str | None:
    """Point ``champion`` at ``version``; the version it leaves keeps ``previous_champion``.
    Returns the champion before the move (None if there was none). Moving to the current
    champion changes nothing (a retried promotion is idempotent)."""
    previous = champion_of(client, name)
    if previous != str(version):
        if previous is not None:
            client.set_registered_model_alias(name, PREVIOUS, previous)
        client.set_registered_model_alias(name, CHAMPION, str(version))
    return previous


def gate_decision(passed: bool) -> str:
    return PASSED if passed else FAILED


@dataclass(frozen=True)
class ServedModel:
    """One model the scoring service serves: the job that registers it (the route's name,
    ``/v1/models/<job>/predict``), its full registered name and how it is served."""

    job: str
    name: str  # catalog.schema.model
    kind: Literal["bundle", "single"]


def served_models(ws: Any) -> list[ServedModel]:
    """The served-model rule: every job named in ``workloads.serving.models``, served from the
    model that job registers (``workloads.<job>.registered_model`` in the environment's catalog and
    schema). ``ws``: a ``settings.WorkloadSettings``. Used by the service, ``mlkit serve``, the
    environment's checks and the stacks' grants, so they always name the same models."""
    from .model_names import full_model_name

    return [ServedModel(job, full_model_name(ws.tracking.registry, getattr(ws, job).registered_model), JOBS[job])
            for job in ws.serving.models]
