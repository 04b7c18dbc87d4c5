"""The release lock enforced by Terraform: a prod-like stack's plan fails on a mismatch, whatever CLI runs it.

The gate is provider-free (``terraform_data`` + preconditions), so real ``terraform`` 1.11 plans it
here: the same construct and the same expectation (read from a lock file by ``expectation_for``) as
the prod stacks, in a stack with a local backend and no provider.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest  # noqa: E402
from cdktn import App, LocalBackend, TerraformStack, TerraformVariable  # noqa: E402

from envconfig.loader import load_environment  # noqa: E402
from mlkit.ops.artifacts import git_info  # noqa: E402
from mlkit.ops.release import ModelPin, ReleaseLock, expectation_for, expectations, lock_path, write_lock  # noqa: E402  # noqa: E402
from stacks.app import REPO, build_app  # noqa: E402
from stacks.release_gate import ReleaseGate  # noqa: E402

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _lock(envs: Path, cfg, wheel_sha: str, **changes) -> None:
    pins = [ModelPin(f"mlk_staging.ml.{j}", "3", "r", "passed", target=full) for j, full in cfg.registered_models.items()]
    lock = ReleaseLock(cfg.name, "staging", "rel-1", git_info(REPO).sha or "", "w.whl", wheel_sha, pins,
                       scoring_image_digest=DIGEST)
    write_lock(lock_path(envs, cfg.name), dataclasses.replace(lock, **changes))


@pytest.fixture()
def prod(tmp_path):
    envs = tmp_path / "environments"
    shutil.copytree(REPO / "environments", envs)
    return envs, load_environment("prod", envs, env={})


def plan(tmp_path: Path, expected, digest: str | None = None, wheel: bytes = b"the locked wheel") -> tuple[int, str]:
    """Synthesize a provider-free stack with the gate and run real terraform init + plan on it."""
    out = tmp_path / "cdktf.out"
    app = App(outdir=str(out))
    stack = TerraformStack(app, "gate")
    LocalBackend(stack, path="terraform.tfstate")
    TerraformVariable(stack, "scoring_image_digest", type="string", default=expected.image_digest)
    ReleaseGate(stack, "release-gate", expected, wheel_source="../../../dist/w.whl", image_variable="scoring_image_digest")
    app.synth()
    (tmp_path / "dist").mkdir(exist_ok=True)
    (tmp_path / "dist" / "w.whl").write_bytes(wheel)
    workdir = out / "stacks" / "gate"
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    init = subprocess.run(["terraform", "init", "-input=false", "-no-color"], cwd=workdir, env=env,
                          capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    args = ["terraform", "plan", "-input=false", "-no-color", "-detailed-exitcode"]
    if digest:
        args.append(f"-var=scoring_image_digest={digest}")
    p = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True)
    return p.returncode, " ".join((p.stdout + p.stderr).split())


needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not on PATH")


@needs_terraform
def test_terraform_plan_passes_only_what_the_lock_pins(prod, tmp_path) -> None:
    envs, cfg = prod
    sha = hashlib.sha256(b"the locked wheel").hexdigest()
    _lock(envs, cfg, sha)
    expected = expectation_for(cfg, envs, REPO)
    assert expected.problems == () and expected.wheel_sha256 == sha and expected.image_digest == DIGEST
    code, text = plan(tmp_path, expected)
    assert code == 2 and "terraform_data" in text  # plans to create the gate: nothing refused

    code, text = plan(tmp_path, expected, wheel=b"a rebuilt wheel")
    assert code == 1 and "Resource precondition failed" in text and f"pins workloads wheel sha256 {sha}" in text

    code, text = plan(tmp_path, expected, digest=OTHER)
    assert code == 1 and f"pins scoring image {DIGEST}; another digest was given" in text


@needs_terraform
def test_a_missing_or_foreign_lock_refuses_at_plan(prod, tmp_path) -> None:
    envs, cfg = prod
    expected = expectation_for(cfg, envs, REPO)
    assert expected.wheel_sha256 is None
    code, text = plan(tmp_path, expected, digest=DIGEST)
    assert code == 1 and "prod.lock.json does not exist: promote a release into prod first" in text

    _lock(envs, cfg, "0" * 64, git_sha="f" * 40, models=[ModelPin("mlk_staging.ml.forecast", "1", None, "passed",
                                                                  target="mlk_prod.ml.forecast")])
    expected = expectation_for(cfg, envs, REPO)
    (tmp_path / "b").mkdir()
    code, text = plan(tmp_path / "b", expected)
    assert code == 1 and f"it pins git commit {'f' * 40}" in text
    assert "it pins models mlk_prod.ml.forecast, prod registers mlk_prod.ml.classifier, mlk_prod.ml.forecast" in text


def test_every_prod_like_stack_carries_the_gate_and_dev_none(tmp_path) -> None:
    from envconfig.loader import load_all

    configs = load_all(REPO / "environments", env={})
    out = tmp_path / "cdktf.out"
    build_app(configs, str(out), releases=expectations(configs, REPO / "environments", REPO)).synth()
    for stack_dir in sorted((out / "stacks").iterdir()):
        doc = json.loads((stack_dir / "cdk.tf.json").read_text())
        gates = doc.get("resource", {}).get("terraform_data", {})
        prod_like = configs[stack_dir.name.split("-")[0]].prod_like
        assert bool(gates) == prod_like, stack_dir.name
        if prod_like:  # no lock in the repository: every stack says so at plan time
            (gate,) = gates.values()
            assert "does not exist: promote a release" in gate["lifecycle"]["precondition"][0]["error_message"]
