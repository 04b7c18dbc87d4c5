"""``mlkit deploy``: synth -> policy gate -> workloads wheel -> terraform per stack.

Each step is a plain callable in :class:`Steps` so the pipeline is the same in CI, on a
laptop and in the tests (which inject a synth that copies a fixture ``cdktf.out``).
A failed stack stops the run: later stacks are not attempted and the summary says which
stacks were applied before the failure. When the environment's serving stack is deployed, the
scoring image is built and pushed in ACR right before it (the registry exists by then: the
platform stack comes first); a failed build stops the run the same way.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from envconfig.environment import EnvironmentConfig
from envconfig.errors import UserError
from envconfig.synth_output import Stack, read_stacks

from . import acr_build, artifacts, azure_auth
from .database_setup import DatabaseOutcome, entra_setup
from .plan import PlanSummary, summarize
from .release import ReleaseRecord, lock_mismatches, lock_path, now, read_lock
from .terraform import Terraform, TerraformFailed, ordered

DIGEST_VARIABLE = "scoring_image_digest"  # the serving stack's (stacks/serving_stack.py)


@dataclass
class GateOutcome:
    status: str  # passed | failed | unavailable
    detail: str = ""


@dataclass
class ImageOutcome:
    image: str  # repository:tag in the environment's registry
    status: str = "not attempted"  # built | pinned | failed | skipped | not attempted
    detail: str = ""
    built: acr_build.BuiltImage | None = None
    digest: str = ""  # sha256:... the serving stack runs (built now, or pinned by the release lock)

    def line(self) -> str:
        if self.built:
            return (f"- scoring image: `{self.image}` built by ACR run {self.built.run_id}, pushed as "
                    f"`{self.built.reference}`")
        return f"- scoring image: `{self.image}` **{self.status}**" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Steps:
    synth: Callable[[EnvironmentConfig, Path], Path]
    gate: Callable[[EnvironmentConfig, Path], GateOutcome]
    wheel: Callable[[Path], artifacts.Wheel]
    credentials: Callable[[EnvironmentConfig], None]
    # (environment, "repository:tag") -> the pushed image; needed only when the serving stack deploys.
    image: Callable[[EnvironmentConfig, str], acr_build.BuiltImage] | None = None
    # (environment, host, setup SQL) -> what happened; runs when the platform stack outputs a BI database.
    database: Callable[[EnvironmentConfig, str, str], DatabaseOutcome] | None = None


@dataclass
class StackOutcome:
    name: str
    status: str  # applied | no changes | planned | blocked | failed | not attempted
    summary: PlanSummary | None = None
    error: str = ""


@dataclass
class DeployReport:
    env: str
    plan_only: bool
    gate: GateOutcome | None = None
    git: artifacts.GitInfo | None = None
    wheel: artifacts.Wheel | None = None
    lock_problems: list[str] = field(default_factory=list)
    stacks: list[StackOutcome] = field(default_factory=list)
    database: DatabaseOutcome | None = None
    image: ImageOutcome | None = None

    @property
    def ok(self) -> bool:
        return (all(s.status not in ("failed", "not attempted") for s in self.stacks)
                and not (self.image and self.image.status == "failed")
                and not (self.database and self.database.status == "failed"))

    def markdown(self) -> str:
        mode = "plan only" if self.plan_only else "deploy"
        lines = [f"# {mode}: {self.env}", ""]
        if self.git:
            lines.append(f"- git commit: `{self.git.sha or 'unknown'}`" + (" (uncommitted changes)" if self.git.dirty else ""))
        if self.wheel:
            lines.append(f"- workloads wheel: `{self.wheel.path.name}` sha256 `{self.wheel.sha256}`")
        if self.gate:
            lines.append(f"- policy gate: **{self.gate.status}**" + (f" ({self.gate.detail})" if self.gate.detail else ""))
        for p in self.lock_problems:
            lines.append(f"- release lock: {p}")
        if self.image:
            lines.append(self.image.line())
        if self.database:
            lines.append(self.database.line())
        applied = [s.name for s in self.stacks if s.status == "applied"]
        lines.append(f"- applied: {', '.join(applied) if applied else 'nothing'}")
        lines.append("")
        if self.image and self.image.status == "failed":
            lines += ["## scoring image: build failed", "```", self.image.detail, "```", ""]
        for s in self.stacks:
            lines.append(f"## {s.name}: {s.status}")
            if s.summary:
                lines.append(s.summary.markdown())
            if s.error:
                lines += ["```", s.error, "```"]
            lines.append("")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "environment": self.env, "plan_only": self.plan_only, "ok": self.ok,
            "gate": self.gate.__dict__ if self.gate else None,
            "git_sha": self.git.sha if self.git else None,
            "wheel": {"name": self.wheel.path.name, "sha256": self.wheel.sha256} if self.wheel else None,
            "lock_problems": self.lock_problems,
            "scoring_image": None if self.image is None else {
                "image": self.image.image, "status": self.image.status, "detail": self.image.detail,
                "registry": self.image.built.registry if self.image.built else None,
                "digest": self.image.digest or None,
                "run_id": self.image.built.run_id if self.image.built else None},
            "stacks": [{"name": s.name, "status": s.status, "error": s.error,
                        "plan": s.summary.as_dict() if s.summary else None} for s in self.stacks],
            "database_setup": None if self.database is None else self.database.__dict__,
        }


# ------------------------------------------------------------------ default steps


def synth_with_stacks(cfg: EnvironmentConfig, outdir: Path, environments: Path | None = None,
                      policies: bool = False) -> Path:
    """The synth service's output for this one environment (prod-like: with its release-lock gate)."""
    return _synthesize_one(cfg, outdir, environments, policies).outdir


def _synthesize_one(cfg: EnvironmentConfig, outdir: Path, environments: Path | None, policies: bool):
    cfg.require_cloud("to synthesize")
    try:
        from .synth import synthesize
        return synthesize({cfg.name: cfg}, outdir, environments=environments, policies=policies)
    except ImportError as e:
        raise UserError(f"synth is not available ({e}); pass --cdktf-out with an already synthesized "
                        "directory", exit_code=1) from None


class PolicyGate:
    """Deploy's policy gate, in this process, on the very directory deploy applies.

    The packs judge the constructs while they are synthesized, so the gate needs the synth that wrote
    the directory: :meth:`synth` is deploy's synth step and remembers its policy run. A directory
    given with ``--cdktf-out`` is first synthesized again into a scratch directory and must be
    byte-for-byte what that synth writes (otherwise the verdict would be about other stacks); checkov
    then scans the directory itself.
    """

    def __init__(self, environments: Path):
        self.environments = environments
        self._runs: dict[Path, object] = {}  # synthesized directory -> its Synthesis

    def synth(self, cfg: EnvironmentConfig, outdir: Path) -> Path:
        done = _synthesize_one(cfg, outdir, self.environments, policies=True)
        self._runs[Path(outdir).resolve()] = done
        return done.outdir

    def __call__(self, cfg: EnvironmentConfig, cdktf_out: Path) -> GateOutcome:
        import tempfile

        try:
            from policies.check import checkov_findings
            from policies.checkov import Checkov, CheckovUnavailable
        except ImportError as e:
            return GateOutcome("unavailable", f"policy gate not available: the policies package is not installed ({e})")
        done = self._runs.pop(Path(cdktf_out).resolve(), None)  # a run is evaluated once
        missing = _differences(cfg, None, Path(cdktf_out))
        if missing:  # nothing to judge: no second synth needed to say so
            return GateOutcome("failed", f"{cdktf_out}: {'; '.join(missing)} of environment {cfg.name}")
        if done is None:
            with tempfile.TemporaryDirectory(prefix="mlkit-gate-") as tmp:
                # Same depth as cdktf.out/, so the stacks' relative wheel paths are the same.
                done = _synthesize_one(cfg, Path(tmp) / "cdktf.out", self.environments, policies=True)
                differ = _differences(cfg, done.outdir, Path(cdktf_out))
            if differ:
                return GateOutcome("failed", f"{cdktf_out} is not what {self.environments}/{cfg.name}.yaml synthesizes "
                                             f"to at this commit ({'; '.join(differ)}): the gate judges only what it "
                                             "synthesized; re-synth, or deploy without --cdktf-out")
        try:
            driver = Checkov()
            try:
                extra = checkov_findings(done.run, Path(cdktf_out), driver)
            finally:
                driver.close()
        except CheckovUnavailable as e:
            return GateOutcome("failed", str(e))
        report = done.run.evaluate(extra, checkov_envs=[cfg.name])
        blocking = [f for f in report.blocking if f.env == cfg.name]
        if blocking:
            lines = [f"{f.rule_id} {f.address or f.path or f.file}: {f.message}" for f in blocking]
            return GateOutcome("failed", "\n".join(lines[:20]) + (f"\n… {len(lines) - 20} more" if len(lines) > 20 else ""))
        return GateOutcome("passed")


def _differences(cfg: EnvironmentConfig, expected: Path | None, given: Path) -> list[str]:
    """What differs between the stacks of ``cfg`` in two synth directories ([] = the same files);
    without ``expected``, only which of them ``given`` lacks."""
    from stacks.app import stack_names
    from envconfig.synth_output import stack_files

    want, have = stack_files(expected) if expected else {}, stack_files(given)
    out = []
    for name in stack_names({cfg.name: cfg}):
        if name not in have:
            out.append(f"no stack {name}")
        elif name in want and want[name].read_bytes() != have[name].read_bytes():
            out.append(f"{name} differs")
    return out


def azure_credentials(cfg: EnvironmentConfig) -> None:
    if cfg.backend and cfg.backend.type == "azurerm":
        azure_auth.check_credentials()
        azure_auth.check_reachable(azure_auth.blob_host(cfg.backend.storage_account_name or ""))


def acr_image(context: Path, dockerfile: str, progress: Callable[[str], None] = lambda _: None
              ) -> Callable[[EnvironmentConfig, str], acr_build.BuiltImage]:
    """Build ``dockerfile`` (relative to ``context``) in the environment's registry with ACR Tasks."""
    def build(cfg: EnvironmentConfig, image: str) -> acr_build.BuiltImage:
        from azure.identity import DefaultAzureCredential

        client = acr_build.registry_client(DefaultAzureCredential(exclude_interactive_browser_credential=True),
                                           cfg.subscription_id)
        return acr_build.build(client, cfg.names.resource_group, cfg.names.container_registry, context,
                               dockerfile, image, progress=progress)
    return build


def default_steps(environments: Path, workloads: Path, dist: Path,
                  progress: Callable[[str], None] = lambda _: None) -> Steps:
    epoch = artifacts.git_info(workloads).commit_time
    # The scoring image's context is the repository root (workloads/Dockerfile copies requirements/ too).
    context = Path(workloads).resolve().parent
    dockerfile = (Path(workloads).resolve() / "Dockerfile").relative_to(context).as_posix()
    gate = PolicyGate(environments)
    return Steps(synth=gate.synth, gate=gate,
                 wheel=lambda out: artifacts.build_wheel(workloads, out, epoch), credentials=azure_credentials,
                 image=acr_image(context, dockerfile, progress), database=entra_setup)


# ------------------------------------------------------------------ the pipeline


def env_stacks(cfg: EnvironmentConfig, cdktf_out: Path) -> list[Stack]:
    stacks = read_stacks(cdktf_out)
    mine = [n for n in stacks if n.startswith(f"{cfg.name}-")]
    if not mine:
        raise UserError(f"{cdktf_out}/manifest.json has no stacks for environment {cfg.name!r} "
                        f"(stacks: {', '.join(sorted(stacks)) or 'none'})", exit_code=1)
    return ordered(stacks, mine)


def require_kubelogin(stack: Stack) -> None:
    """The serving stack's Kubernetes provider runs ``kubelogin get-token`` at plan and apply time."""
    if shutil.which("kubelogin") is None:
        raise UserError(f"kubelogin not found on PATH: stack {stack.name!r} authenticates to AKS through it "
                        "(Entra ID, no cluster credentials). Install it with `az aks install-cli` (kubectl + "
                        "kubelogin), or put the kubelogin binary of an Azure/kubelogin release on PATH",
                        exit_code=1)


def scoring_image(cfg: EnvironmentConfig, stack: Stack, wheel: artifacts.Wheel) -> str:
    """``repository:tag`` to build (the workloads version of the wheel being deployed). The synthesized
    serving stack must run that repository by digest (``@${var.scoring_image_digest}``), never a tag."""
    version = wheel.path.name.split("-")[1]  # PEP 427: {distribution}-{version}-...
    image = cfg.names.scoring_image_ref(version)
    output = (stack.config.get("output") or {}).get(cfg.names.scoring_image_output) or {}
    runs = f"/{cfg.names.scoring_image_repository}@${{var.{DIGEST_VARIABLE}}}"
    if not str(output.get("value", "")).endswith(runs):
        raise UserError(f"stack {stack.name!r} runs {output.get('value') or 'no scoring_image output'!r}, not "
                        f"<registry>{runs} (the image by the digest this deploy records); re-synth", exit_code=1)
    return image


def check_backend(cfg: EnvironmentConfig, stack: Stack) -> None:
    """The synthesized backend must be the environment's: state must never land elsewhere."""
    if cfg.backend is None:
        raise UserError(f"environment {cfg.name!r} has no backend: it is not deployable", exit_code=1)
    kind, settings = stack.backend
    if kind != cfg.backend.type:
        raise UserError(f"stack {stack.name!r} was synthesized with a {kind!r} backend but environment "
                        f"{cfg.name!r} uses {cfg.backend.type!r}; re-synth", exit_code=1)
    for key in ("resource_group_name", "storage_account_name", "container_name"):
        want = getattr(cfg.backend, key)
        if kind == "azurerm" and settings.get(key) != want:
            raise UserError(f"stack {stack.name!r} backend {key} is {settings.get(key)!r}, the environment "
                            f"says {want!r}; re-synth", exit_code=1)


def deploy(cfg: EnvironmentConfig, *, environments: Path, out: Path, repo: Path, steps: Steps, tf: Terraform,
           plan_only: bool = False, cdktf_out: Path | None = None,
           progress: Callable[[str], None] = lambda _: None) -> DeployReport:
    report = DeployReport(cfg.name, plan_only)
    lock = None
    out.mkdir(parents=True, exist_ok=True)
    try:
        progress("synth")
        if cdktf_out is None:
            cdktf_out = steps.synth(cfg, out / "cdktf.out")
        stacks = env_stacks(cfg, cdktf_out)
        progress("policy gate")
        report.gate = steps.gate(cfg, cdktf_out)
        if report.gate.status == "failed":
            raise UserError(f"policy gate failed for {cfg.name}:\n{report.gate.detail}", exit_code=1)
        progress("workloads wheel")
        report.git = artifacts.git_info(repo)
        report.wheel = steps.wheel(out / "dist")
        if cfg.prod_like:
            lpath = lock_path(environments, cfg.name)
            lock = read_lock(lpath)
            report.lock_problems = lock_mismatches(lock, lpath, report.git.sha, report.wheel.sha256,
                                                   list(cfg.registered_models.values()))
            if report.git.dirty:
                report.lock_problems.append("the working tree has uncommitted changes")
            if report.lock_problems and not plan_only:
                raise UserError(f"refusing to apply to {cfg.name} (prod-like): its release lock does not match "
                                "what would be deployed:\n  - " + "\n  - ".join(report.lock_problems), exit_code=1)
        for s in stacks:
            check_backend(cfg, s)
        serving = next((s for s in stacks if s.name == cfg.names.serving_stack), None)
        if serving is not None:
            require_kubelogin(serving)
            report.image = ImageOutcome(scoring_image(cfg, serving, report.wheel))
            if cfg.prod_like and lock is not None and lock.scoring_image_digest:
                # The lock pins the digest (the stack's default; any other fails its plan): never rebuilt.
                report.image.status, report.image.digest = "pinned", lock.scoring_image_digest
                report.image.detail = f"by {lpath}: not rebuilt"
        steps.credentials(cfg)
    except UserError:
        _write(report, out)
        raise
    report.stacks = [StackOutcome(s.name, "not attempted") for s in stacks]
    by_name = {o.name: o for o in report.stacks}
    for outcome, stack in zip(report.stacks, stacks):
        if stack.name == cfg.names.serving_stack and not _image(cfg, report.image, steps, plan_only, progress):
            break
        extra: tuple[str, ...] = ()
        if stack.name == cfg.names.serving_stack and report.image.digest and report.image.status != "pinned":
            extra = (f"-var={DIGEST_VARIABLE}={report.image.digest}",)
        elif stack.name == cfg.names.serving_stack and report.image.status == "skipped":
            outcome.status = "blocked"
            outcome.error = "runs the scoring image by digest: a deploy (not --plan-only) builds it first"
            continue
        progress(f"{stack.name}: init/plan" + ("" if plan_only else "/apply"))
        try:
            _one_stack(stack, outcome, out / stack.name, tf, plan_only, extra)
        except TerraformFailed as e:
            pending = [d for d in stack.dependencies if by_name.get(d) and by_name[d].status in ("planned", "blocked")]
            if plan_only and pending:
                # Its inputs come from stacks whose changes are not applied yet: not a failure of the plan.
                outcome.status = "blocked"
                outcome.error = f"depends on unapplied changes in {', '.join(pending)}; plan it after they apply\n{e}"
                continue
            outcome.status, outcome.error = "failed", str(e)
            break
    platform = next((s for s in stacks if s.name == cfg.names.platform_stack), None)
    if not plan_only and platform is not None and by_name[platform.name].status in ("applied", "no changes"):
        report.database = _database(cfg, platform, steps, tf, progress)
    if report.ok and not plan_only:
        built = report.image.built if report.image else None
        pinned = report.image.digest if report.image and report.image.status == "pinned" else ""
        rec = ReleaseRecord(cfg.name, report.git.sha or "unknown", report.wheel.path.name, report.wheel.sha256,
                            [s.name for s in report.stacks], now(),
                            scoring_image=built.reference if built else (
                                f"{cfg.names.scoring_image_repository}@{pinned}" if pinned else ""))
        (out / "release.json").write_text(json.dumps(rec.as_dict(), indent=2) + "\n")
    _write(report, out)
    return report


def _image(cfg: EnvironmentConfig, outcome: ImageOutcome, steps: Steps, plan_only: bool,
           progress: Callable[[str], None]) -> bool:
    """Build and push the scoring image before the serving stack; False = stop the run."""
    if outcome.status == "pinned":
        return True
    if plan_only:
        outcome.status = "skipped"
        outcome.detail = ("--plan-only: not built; the serving stack runs the image by digest, so it is planned by "
                          "the deploy that builds it")
        return True
    progress(f"scoring image: ACR build {outcome.image}")
    if steps.image is None:
        outcome.status, outcome.detail = "failed", "no image build step configured"
        return False
    try:
        outcome.built = steps.image(cfg, outcome.image)
    except UserError as e:
        outcome.status, outcome.detail = "failed", str(e)
        return False
    outcome.status, outcome.digest = "built", outcome.built.digest
    return True


def _database(cfg: EnvironmentConfig, platform: Stack, steps: Steps, tf: Terraform,
              progress: Callable[[str], None]) -> DatabaseOutcome | None:
    """The BI database's roles, tables and grants (idempotent), once its server exists: every deploy,
    so a grant added to the environment reaches the database too."""
    names = cfg.names
    if names.postgres_setup_sql_output not in ((platform.config.get("output") or {})):
        return None
    outputs = tf.output_json(platform)
    host = str(outputs[names.postgres_fqdn_output]["value"])
    if steps.database is None:
        return DatabaseOutcome(host, "failed", "no database setup step configured")
    progress(f"BI database setup: {host}")
    return steps.database(cfg, host, str(outputs[names.postgres_setup_sql_output]["value"]))


def _one_stack(stack: Stack, outcome: StackOutcome, sdir: Path, tf: Terraform, plan_only: bool,
               extra: tuple[str, ...] = ()) -> None:
    sdir.mkdir(parents=True, exist_ok=True)
    tf.init(stack)
    plan_file = (sdir / "plan.tfplan").resolve()
    code = tf.plan(stack, plan_file, *extra)
    plan = tf.show_json(stack, plan_file)
    (sdir / "plan.json").write_text(json.dumps(plan))
    outcome.summary = summarize(stack.name, plan)
    if code == 0:
        outcome.status = "no changes"
    elif plan_only:
        outcome.status = "planned"
    else:
        tf.apply(stack, plan_file)
        outcome.status = "applied"


def _write(report: DeployReport, out: Path) -> None:
    (out / "summary.md").write_text(report.markdown())
    (out / "deploy.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
