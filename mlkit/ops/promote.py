"""``mlkit promote --from A --to B``: move A's verified release into B.

The contract with the workloads (aliases, tags, the champion move) is
``mlkit_workloads.registry_contract``. A's deployed release (git sha, wheel sha256) is the latest
release record in A's MLflow (see release.py).

Across two registries ``MlflowClient.copy_model_version`` cannot be used: it registers a
``models:/name/version`` pointer that resolves in the *destination* registry. So the version's
artifacts are downloaded from A and registered in B from a run there (tag
``mlkit.promoted_from`` = ``A/name/version``), which is also what makes re-runs idempotent.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

from envconfig.diff import diff_environments
from envconfig.environment import EnvironmentConfig
from envconfig.errors import UserError
from mlkit_workloads.registry_contract import CHAMPION, PASSED, PROMOTED_FROM, PROMOTION, PROMOTION_REASONS, move_champion

from .release import ModelPin, ReleaseLock, latest_release, lock_path, now, read_lock, release_experiment, write_lock

# Fields that are meant to differ between environments: sizes, names, grants, descriptions.
EXPECTED_DIFFS = (
    "name", "description", "tags.environment", "backend.key", "prod_like", "principals.*", "key_vault.grants.*",
    "*sku", "*sku_tier", "*vm_size", "*min_count", "*max_count", "*capacity", "*max_capacity", "*min_idle",
    "*idle_minutes", "*min_workers", "*max_workers", "*node_type", "*allowed_node_types", "*os_disk_size_gb",
    "*replication", "*partition_count", "*message_retention_days", "*soft_delete_retention_days",
    "*purge_protection", "workloads.*.search.*", "jobs.schedules.*.paused",
)


class PromotionRefused(UserError):
    def __init__(self, a: str, b: str, reasons: list[str]):
        self.reasons = reasons
        super().__init__(f"refusing to promote {a} -> {b}:\n  - " + "\n  - ".join(reasons), exit_code=1)


@dataclass
class Promotion:
    diff: list[tuple[str, Any, Any]]
    unexpected: list[str]
    lock: ReleaseLock | None = None
    lock_written: bool = False
    copies: list[dict] = field(default_factory=list)
    # issue 13: registrations in the target's Azure ML workspace (mlkit.ops.aml_registry)
    aml: list[dict] = field(default_factory=list)


def env_diff(a: EnvironmentConfig, b: EnvironmentConfig) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    rows = diff_environments(a.model_dump(mode="json"), b.model_dump(mode="json"))
    unexpected = [f for f, _, _ in rows if not any(fnmatchcase(f, p) for p in EXPECTED_DIFFS)]
    return rows, unexpected


def released_models(cfg: EnvironmentConfig) -> list[str]:
    """The registered models an environment's jobs produce: full names (catalog.schema.model)."""
    return sorted(set(cfg.registered_models.values()))


def target_names(a: EnvironmentConfig, b: EnvironmentConfig) -> dict[str, str]:
    """A's full model name -> B's: the same job's model in B's catalog and schema."""
    return {a.registered_models[job]: b.registered_models[job] for job in a.registered_models}


def champion_pins(client, source_env: str, models: list[str]) -> tuple[list[ModelPin], list[str]]:
    """Each model's champion version with its gate decision; problems as reasons."""
    from mlflow.exceptions import MlflowException

    pins, problems = [], []
    for name in models:
        try:
            mv = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            problems.append(f"{source_env} {name}: no version has the '{CHAMPION}' alias (not trained, or no "
                            "version passed its gates yet)")
            continue
        decision = (mv.tags or {}).get(PROMOTION, "")
        run = client.get_run(mv.run_id) if mv.run_id else None
        reasons = run.data.tags.get(PROMOTION_REASONS, "") if run else ""
        params = run.data.params if run else {}
        pin = ModelPin(name, str(mv.version), mv.run_id, decision or "unknown", reasons,
                       dict(run.data.metrics) if run else {}, params.get("data_table_version"),
                       f"models:/{name}/{mv.version}")
        pins.append(pin)
        if decision != PASSED:
            why = f": {reasons}" if reasons else ""
            problems.append(f"{source_env} {name} v{mv.version}: gate decision is {pin.gate_decision!r}, "
                            f"not 'passed'{why}")
    return sorted(pins, key=lambda p: p.name), problems


def registry_client(uri: str):
    """databricks-uc://p: models in Unity Catalog, runs and releases in the workspace databricks://p."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri.replace("databricks-uc://", "databricks://"), registry_uri=uri)


def aml_registry(b: EnvironmentConfig, aml_uri: str | None = None) -> tuple[Any, str | None]:
    """B's Azure ML registry and an Entra token for it, where B's ML workspace registers models (issue 13);
    (None, None) otherwise. The URI defaults to B's workspace's."""
    if not (b.ml_workspace.enabled and b.ml_workspace.register_models):
        return None, None
    from mlflow import MlflowClient

    from .aml_registry import entra_token, https_uri, workspace_uri

    uri = aml_uri or https_uri(workspace_uri(b))
    return MlflowClient(tracking_uri=uri, registry_uri=uri), entra_token()


def promote(a: EnvironmentConfig, b: EnvironmentConfig, *, environments: Path, src, dst, src_uri: str,
            update_lock: bool = False, same_registry: bool = False,
            progress: Callable[[str], None] = lambda _: None, aml=None,
            aml_token: Callable[[], str] | None = None) -> Promotion:
    """``same_registry``: A and B share one registry (one Unity Catalog metastore): versions are copied
    with the registry's own ``copy_model_version`` into B's catalog instead of downloaded and re-logged."""
    result = Promotion(*env_diff(a, b))
    progress(f"verifying {a.name}'s release")
    release = latest_release(src, release_experiment(a))
    if release is None:
        raise PromotionRefused(a.name, b.name, [f"{a.name}'s release is unknown: no release record in "
                                                f"{release_experiment(a)} (deploy {a.name} first)"])
    release_id, record = release
    pins, problems = champion_pins(src, a.name, released_models(a))
    if problems:
        raise PromotionRefused(a.name, b.name, problems)
    targets = target_names(a, b)
    if same_registry and any(t == s for s, t in targets.items()):
        raise PromotionRefused(a.name, b.name, [f"{a.name} and {b.name} share a registry but name the same models "
                                                f"({', '.join(sorted(targets))}): give {b.name} its own catalog or "
                                                "schema (workloads.tracking.registry)"])
    for pin in pins:
        pin.target = targets[pin.name]
    lock = ReleaseLock(b.name, a.name, release_id, record.git_sha, record.wheel_name, record.wheel_sha256, pins, now(),
                       scoring_image_digest=record.scoring_image_digest)
    path = lock_path(environments, b.name)
    current = read_lock(path)
    if current is not None and current.fingerprint() != lock.fingerprint():
        if not update_lock:
            raise PromotionRefused(a.name, b.name, [
                f"{path} is stale: it pins {current.promoted_from} release {current.source_release_id} (git "
                f"{current.git_sha[:12]}, {_models(current)}), {a.name}'s current release is {release_id} (git "
                f"{record.git_sha[:12]}, {_models(lock)}); re-run with --update-lock to propose the new release"])
    if current is not None and current.fingerprint() == lock.fingerprint():
        lock.written_at = current.written_at  # same release: leave the reviewed file byte-identical
    else:
        write_lock(path, lock)
        result.lock_written = True
    result.lock = lock
    for pin in pins:
        progress(f"copying {pin.name} v{pin.version} into {b.name}")
        result.copies.append(copy_version(pin, a.name, b, src, src_uri, dst, lock, same_registry))
    if aml is not None:  # issue 13: B's Azure ML workspace registry too, recorded in B's lock
        from .aml_registry import register

        progress(f"registering {len(pins)} version(s) in {b.name}'s Azure ML workspace")
        result.aml = register(aml, pins, result.copies, a.name, lock, dst, aml_token)
        on_disk = read_lock(path)
        if on_disk is None or on_disk.as_dict() != lock.as_dict():
            write_lock(path, lock)
            result.lock_written = True
    return result


def _models(lock: ReleaseLock) -> str:
    return ", ".join(f"{m.name} v{m.version}" for m in lock.models) or "no models"


def copy_version(pin: ModelPin, source_env: str, b: EnvironmentConfig, src, src_uri: str, dst,
                 lock: ReleaseLock, same_registry: bool = False) -> dict:
    import mlflow
    from mlflow.exceptions import MlflowException

    key = f"{source_env}/{pin.name}/{pin.version}"
    name = pin.target or pin.name  # the model's full name in B
    # Unity Catalog's search results carry no tags (ModelVersionSearch): read each version for them.
    existing = [mv for mv in dst.search_model_versions(f"name='{name}'")
                if (dst.get_model_version(name, mv.version).tags or {}).get(PROMOTED_FROM) == key]
    tags = {PROMOTED_FROM: key, PROMOTION: pin.gate_decision, "mlkit.git_sha": lock.git_sha,
            "mlkit.data_table_version": pin.data_table_version or ""}
    if existing:
        version, reused = str(existing[0].version), True
    elif same_registry:
        # One metastore: the registry copies the version's files itself (UC: into B's catalog).
        mv = dst.copy_model_version(f"models:/{pin.name}/{pin.version}", name)
        for k, v in tags.items():
            dst.set_model_version_tag(name, mv.version, k, v)
        version, reused = str(mv.version), False
    else:
        exp_name = b.names.experiment("promotions")
        exp = dst.get_experiment_by_name(exp_name)
        exp_id = exp.experiment_id if exp else dst.create_experiment(exp_name)
        run = dst.create_run(exp_id, run_name=f"promote {key}", tags={
            PROMOTED_FROM: key, "mlkit.source_run_id": pin.run_id or "", "mlkit.git_sha": lock.git_sha,
            "mlkit.wheel_sha256": lock.wheel_sha256})
        for k, v in pin.metrics.items():
            dst.log_metric(run.info.run_id, k, v)
        with tempfile.TemporaryDirectory(prefix="mlkit-promote-") as tmp:
            # Resolve through A's registry client: a models:/ URI alone would go to the default registry.
            where = src.get_model_version_download_uri(pin.name, pin.version)
            local = mlflow.artifacts.download_artifacts(artifact_uri=where, dst_path=tmp, tracking_uri=src_uri)
            dst.log_artifacts(run.info.run_id, local, "model")
        dst.set_terminated(run.info.run_id, "FINISHED")
        try:
            dst.create_registered_model(name)
        except MlflowException as e:
            if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code):
                raise
        mv = dst.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags)
        version, reused = str(mv.version), False
    previous = move_champion(dst, name, version)
    return {"model": name, "source_model": pin.name, "source_version": pin.version, "version": version, "reused": reused,
            "previous_champion": previous}
