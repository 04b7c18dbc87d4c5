"""Release records and release locks.

*Release record*: what a deploy put into an environment (git commit, workloads wheel
sha256, stacks applied, the scoring image by digest). ``mlkit deploy`` writes it to ``<out>/release.json`` and, when the
environment's MLflow is reachable, logs it as a run in the experiment
``names.experiment("releases")`` (tags ``mlkit.release.*``), which is where promotion reads
the source environment's current release from.

*Release lock* (``environments/<env>.lock.json``): the reviewed file that pins what a
prod-like environment may run: the source release, git sha, wheel hash and the model
versions (with gate decisions, metrics and data table versions). Written by
``mlkit promote``; checked by ``mlkit deploy`` before any apply to a prod-like environment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envconfig.errors import UserError

if TYPE_CHECKING:
    from stacks.release_gate import ReleaseExpectation

FORMAT = 1
RELEASE_TAG = "mlkit.release"


@dataclass
class ReleaseRecord:
    environment: str
    git_sha: str
    wheel_name: str
    wheel_sha256: str
    stacks: list[str] = field(default_factory=list)
    deployed_at: str = ""
    format: int = FORMAT
    # registry/repository:tag@sha256:... when the deploy built the scoring image ("" = not built)
    scoring_image: str = ""

    @property
    def scoring_image_digest(self) -> str:
        return self.scoring_image.rpartition("@")[2] if "@" in self.scoring_image else ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelPin:
    name: str                 # registered model name in the source environment
    version: str              # source version
    run_id: str | None
    gate_decision: str
    gate_reasons: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    data_table_version: str | None = None
    source_uri: str = ""      # models:/<name>/<version> in the source registry
    target: str = ""          # full name (catalog.schema.model) in the locked environment


@dataclass
class ReleaseLock:
    environment: str
    promoted_from: str
    source_release_id: str
    git_sha: str
    wheel_name: str
    wheel_sha256: str
    models: list[ModelPin]
    written_at: str = ""
    format: int = FORMAT
    # sha256:... of the scoring image the source environment's deploy built (its release record)
    scoring_image_digest: str = ""

    def fingerprint(self) -> str:
        """What makes two locks the same release (independent of when they were written)."""
        core = {"from": self.promoted_from, "release": self.source_release_id, "git": self.git_sha,
                "wheel": self.wheel_sha256, "models": sorted((m.name, m.version) for m in self.models),
                "image": self.scoring_image_digest}
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fingerprint": self.fingerprint()}


def lock_path(environments: Path, env: str) -> Path:
    return Path(environments) / f"{env}.lock.json"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def read_lock(path: Path) -> ReleaseLock | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        data.pop("fingerprint", None)
        models = [ModelPin(**m) for m in data.pop("models")]
        return ReleaseLock(models=models, **data)
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise UserError(f"{path}: not a release lock ({e}); restore it from git or re-run `mlkit promote`",
                        exit_code=1) from None


def write_lock(path: Path, lock: ReleaseLock) -> None:
    path.write_text(json.dumps(lock.as_dict(), indent=2, sort_keys=True) + "\n")


def lock_mismatches(lock: ReleaseLock | None, path: Path, git_sha: str | None, wheel_sha256: str,
                    models: list[str] | None = None) -> list[str]:
    """Why deploying (git_sha, wheel, models) to a locked environment is refused; empty = allowed."""
    if lock is None:
        return [f"{path} does not exist: promote a release into this environment first (`mlkit promote`)"]
    out = []
    pinned = sorted(m.target or m.name for m in lock.models)
    if models is not None and pinned != sorted(models):
        out.append(f"the lock pins models {', '.join(pinned) or 'none'}, the environment registers "
                   f"{', '.join(sorted(models))}")
    if not lock.scoring_image_digest:
        out.append("the lock pins no scoring image digest (promote from an environment whose deploy built it)")
    if git_sha != lock.git_sha:
        out.append(f"git commit is {git_sha or 'unknown'}, the lock pins {lock.git_sha}")
    if wheel_sha256 != lock.wheel_sha256:
        out.append(f"workloads wheel sha256 is {wheel_sha256}, the lock pins {lock.wheel_sha256}")
    return out


# ------------------------------------------------------------------ records in MLflow


def release_experiment(cfg) -> str:
    return cfg.names.experiment("releases")


def record_release(client, experiment: str, record: ReleaseRecord) -> str:
    """Log ``record`` as a finished run; returns the run id (the release id)."""
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    tags = {RELEASE_TAG: "true", "mlkit.release.environment": record.environment,
            "mlkit.release.git_sha": record.git_sha, "mlkit.release.wheel_sha256": record.wheel_sha256,
            "mlkit.release.record": json.dumps(record.as_dict(), sort_keys=True)}
    run = client.create_run(exp_id, tags=tags, run_name=f"release-{record.git_sha[:8]}")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def latest_release(client, experiment: str) -> tuple[str, ReleaseRecord] | None:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{RELEASE_TAG}` = 'true' "
                              "and attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        return None
    data = json.loads(runs[0].data.tags["mlkit.release.record"])
    return runs[0].info.run_id, ReleaseRecord(**data)


def expectation_for(cfg, environments: Path | None, repo: Path) -> "ReleaseExpectation | None":
    """What a prod-like environment's lock expects of its stacks; None for the others (not locked)."""
    from stacks.release_gate import ReleaseExpectation

    from .artifacts import git_info

    if not cfg.prod_like or environments is None:
        return None
    path = lock_path(environments, cfg.name)
    shown = str(path)
    try:
        lock = read_lock(path)
    except UserError as e:
        return ReleaseExpectation(cfg.name, shown, (str(e),))
    if lock is None:
        return ReleaseExpectation(cfg.name, shown, (f"{shown} does not exist: promote a release into {cfg.name} "
                                                    "first (`mlkit promote`)",))
    problems = []
    pinned = sorted(m.target or m.name for m in lock.models)
    if pinned != sorted(cfg.registered_models.values()):
        problems.append(f"it pins models {', '.join(pinned) or 'none'}, {cfg.name} registers "
                        f"{', '.join(sorted(cfg.registered_models.values()))}")
    sha = git_info(repo).sha
    if sha != lock.git_sha:
        problems.append(f"it pins git commit {lock.git_sha}, this synth is of {sha or 'an unknown commit'}")
    if not lock.scoring_image_digest:
        problems.append("it pins no scoring image digest (promote from an environment whose deploy built the image)")
    return ReleaseExpectation(cfg.name, shown, tuple(problems), lock.wheel_sha256, lock.scoring_image_digest or None)


def expectations(configs: dict, environments: Path | None, repo: Path) -> dict[str, "ReleaseExpectation"]:
    """Environment -> what its release lock expects, for the prod-like ones (the others are not locked)."""
    out = {}
    for name, cfg in configs.items():
        expected = expectation_for(cfg, environments, repo) if cfg.is_cloud else None
        if expected is not None:
            out[name] = expected
    return out
