"""mlkit deploy against real terraform on fixture stacks (terraform_data, local backend)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from ops_helpers import ENVIRONMENTS, WHEELPKG, copy_envs, edit_stack, git_repo, make_cdktf_out

from envconfig.errors import UserError
from envconfig.loader import load_environment
from mlkit.ops import artifacts
from mlkit.ops.deploy import GateOutcome, PolicyGate, Steps, azure_credentials, deploy
from mlkit.ops.release import ModelPin, ReleaseLock, lock_path, write_lock
from mlkit.ops.terraform import Terraform, find_terraform, ordered
from envconfig.synth_output import read_stacks

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not on PATH")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> artifacts.Wheel:
    return artifacts.build_wheel(WHEELPKG, tmp_path_factory.mktemp("dist"), epoch=1700000000)


@pytest.fixture
def steps(wheel):
    def copy_wheel(out: Path) -> artifacts.Wheel:
        out.mkdir(parents=True, exist_ok=True)
        return artifacts.Wheel(Path(shutil.copy(wheel.path, out)), wheel.sha256)

    return Steps(synth=lambda cfg, d: pytest.fail("synth must not run when --cdktf-out is given"),
                 gate=lambda cfg, d: GateOutcome("passed"), wheel=copy_wheel, credentials=azure_credentials)


def run(tmp_path, steps, env="ci", plan_only=False, cdktf=None, environments=ENVIRONMENTS, repo=None):
    cfg = load_environment(env, environments)
    cdktf = cdktf or make_cdktf_out(tmp_path / "cdktf.out", env)
    tf = Terraform(find_terraform())
    report = deploy(cfg, environments=environments, out=tmp_path / "out", repo=repo or tmp_path, steps=steps,
                    tf=tf, plan_only=plan_only, cdktf_out=cdktf)
    return report, tf, cdktf


def test_manifest_order_puts_dependencies_first(tmp_path):
    out = make_cdktf_out(tmp_path / "o", "ci")
    stacks = read_stacks(out)
    assert [s.name for s in ordered(stacks, ["ci-workspace"])] == ["ci-platform", "ci-workspace"]
    m = json.loads((out / "manifest.json").read_text())
    m["stacks"]["ci-platform"]["dependencies"] = ["ci-workspace"]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="cycle: ci-platform -> ci-workspace -> ci-platform"):
        ordered(read_stacks(out))
    with pytest.raises(UserError, match="manifest.json: not found"):
        read_stacks(tmp_path / "nowhere")


def test_deploy_applies_stacks_in_dependency_order_then_is_idempotent(tmp_path, steps):
    report, tf, cdktf = run(tmp_path, steps)
    assert [(s.name, s.status) for s in report.stacks] == [("ci-platform", "applied"), ("ci-workspace", "applied")]
    applies = [r.args for r in tf.log if r.args[1] == "apply"]
    assert len(applies) == 2 and str(tmp_path) in applies[0][-1] and "ci-platform" in applies[0][-1]
    # The workspace stack read the platform's output through remote state: the value is real.
    state = json.loads((cdktf / "stacks/ci-workspace/terraform.tfstate").read_text())
    storage_id = json.loads((cdktf / "stacks/ci-platform/terraform.tfstate").read_text())["outputs"]
    job = next(r for r in state["resources"] if r["mode"] == "managed")["instances"][0]["attributes"]["input"]["value"]
    assert job["storage_id"] == next(iter(storage_id.values()))["value"]
    assert report.stacks[0].summary.adds == ["terraform_data.network", "terraform_data.storage"]
    record = json.loads((tmp_path / "out/release.json").read_text())
    assert record["wheel_sha256"] == report.wheel.sha256 and record["stacks"] == ["ci-platform", "ci-workspace"]
    again, _, _ = run(tmp_path, steps, cdktf=cdktf)
    assert [s.status for s in again.stacks] == ["no changes", "no changes"]


def test_plan_only_writes_plans_and_calls_out_every_destroy(tmp_path, steps):
    _, _, cdktf = run(tmp_path, steps)

    def change(doc):
        doc["resource"]["terraform_data"]["storage"]["input"]["replication"] = "GZRS"
        del doc["resource"]["terraform_data"]["network"]
        doc["resource"]["terraform_data"]["storage"]["triggers_replace"] = ["v2"]
    edit_stack(cdktf, "ci-platform", change)
    report, tf, _ = run(tmp_path, steps, plan_only=True, cdktf=cdktf)
    plat = report.stacks[0]
    assert plat.status == "planned"
    assert plat.summary.destroys == ["terraform_data.network"]
    assert plat.summary.replaces == ["terraform_data.storage"]
    assert not any(r.args[1] == "apply" for r in tf.log)
    sdir = tmp_path / "out" / "ci-platform"
    assert (sdir / "plan.tfplan").stat().st_size > 0
    assert json.loads((sdir / "plan.json").read_text())["format_version"].startswith("1.")
    md = (tmp_path / "out/summary.md").read_text()
    assert "**DESTROY** `terraform_data.network`" in md and "REPLACE" in md and "applied: nothing" in md
    # Nothing was applied: planning again still shows the same destroy.
    again, _, _ = run(tmp_path, steps, plan_only=True, cdktf=cdktf)
    assert again.stacks[0].summary.destroys == ["terraform_data.network"]


def test_failed_stack_stops_later_stacks_and_summary_says_what_was_applied(tmp_path, steps):
    cdktf = make_cdktf_out(tmp_path / "cdktf.out", "ci")

    def boom(doc):
        doc["resource"]["terraform_data"]["job_forecast"]["provisioner"] = [{"local-exec": {"command": "exit 3"}}]
    edit_stack(cdktf, "ci-workspace", boom)
    report, _, _ = run(tmp_path, steps, cdktf=cdktf)
    assert [(s.name, s.status) for s in report.stacks] == [("ci-platform", "applied"), ("ci-workspace", "failed")]
    assert "terraform apply failed for stack 'ci-workspace'" in report.stacks[1].error
    assert not report.ok and not (tmp_path / "out/release.json").exists()
    assert "applied: ci-platform" in (tmp_path / "out/summary.md").read_text()

    def boom_first(doc):
        doc["resource"]["terraform_data"]["network"]["lifecycle"] = {
            "precondition": [{"condition": "${terraform_data.storage.input.replication == \"LRS\"}", "error_message": "network precondition"}]}
    cdktf2 = make_cdktf_out(tmp_path / "second", "ci")
    edit_stack(cdktf2, "ci-platform", boom_first)
    report, _, _ = run(tmp_path / "x", steps, cdktf=cdktf2)
    assert [s.status for s in report.stacks] == ["failed", "not attempted"]
    assert "network precondition" in report.stacks[0].error


def test_failed_policy_gate_runs_no_terraform(tmp_path, steps):
    steps.gate = lambda cfg, d: GateOutcome("failed", "MLK001 storage allows public access")
    with pytest.raises(UserError, match="policy gate failed for ci:\nMLK001"):
        run(tmp_path, steps)
    assert not list(tmp_path.rglob("terraform.tfstate"))
    assert "policy gate: **failed**" in (tmp_path / "out/summary.md").read_text()


def test_policy_gate_is_visible_when_not_available(tmp_path):
    cfg = load_environment("ci", ENVIRONMENTS)
    outcome = PolicyGate(ENVIRONMENTS)(cfg, tmp_path)
    if importlib.util.find_spec("policies") is not None:
        assert outcome.status in ("passed", "failed")
    else:
        assert outcome.status == "unavailable" and outcome.detail.startswith("policy gate not available")


def test_policy_gate_judges_the_very_directory_deploy_applies(tmp_path):
    # Deploy's own synth: the gate reuses that synth's policy run and scans its files with checkov.
    envs = Path(__file__).resolve().parent.parent / "environments"
    cfg = load_environment("dev", envs, env={})
    gate = PolicyGate(envs)
    synthesized = gate.synth(cfg, tmp_path / "own" / "cdktf.out")
    assert gate(cfg, synthesized) == GateOutcome("passed")
    # A --cdktf-out directory that is not what the environment synthesizes to is refused, not judged.
    given = tmp_path / "given" / "cdktf.out"
    shutil.copytree(synthesized, given)
    edit_stack(given, "dev-platform", lambda doc: doc["resource"]["azurerm_storage_account"].update(
        {k: {**v, "allow_nested_items_to_be_public": True} for k, v in doc["resource"]["azurerm_storage_account"].items()}))
    outcome = PolicyGate(envs)(cfg, given)
    assert outcome.status == "failed" and "dev-platform differs" in outcome.detail, outcome


def test_prod_like_apply_needs_a_matching_release_lock(tmp_path, steps, wheel):
    envs = copy_envs(tmp_path / "envs")
    repo = tmp_path / "repo"
    sha = git_repo(repo)
    with pytest.raises(UserError, match=r"(?s)refusing to apply to ciprod.*ciprod.lock.json does not exist"):
        run(tmp_path / "a", steps, env="ciprod", environments=envs, repo=repo)
    wrong_models = ReleaseLock("ciprod", "ci", "run-1", sha, wheel.path.name, wheel.sha256,
                               [ModelPin("mlk_ci.ml.forecast", "1", None, "passed", target="mlk_ci.ml.forecast")])
    write_lock(lock_path(envs, "ciprod"), wrong_models)
    with pytest.raises(UserError, match=r"(?s)the lock pins models mlk_ci.ml.forecast, the environment registers "
                                        r"mlk_ciprod.ml.classifier, mlk_ciprod.ml.forecast.*pins no scoring image"):
        run(tmp_path / "b0", steps, env="ciprod", environments=envs, repo=repo)
    pins = [ModelPin(f"mlk_ci.ml.{m}", "1", None, "passed", target=f"mlk_ciprod.ml.{m}") for m in ("forecast", "classifier")]
    lock = ReleaseLock("ciprod", "ci", "run-1", sha, wheel.path.name, "0" * 64, pins,
                       scoring_image_digest="sha256:" + "ab" * 32)
    write_lock(lock_path(envs, "ciprod"), lock)
    with pytest.raises(UserError, match="wheel sha256 is .* the lock pins 0000"):
        run(tmp_path / "b", steps, env="ciprod", environments=envs, repo=repo)
    # Plan-only is allowed and lists why an apply would be refused.
    report, tf, _ = run(tmp_path / "c", steps, env="ciprod", environments=envs, repo=repo, plan_only=True)
    assert "the lock pins 0000" in report.lock_problems[0] and report.ok
    # On a fresh environment the workspace stack cannot read the platform's outputs yet.
    assert [s.status for s in report.stacks] == ["planned", "blocked"]
    assert report.stacks[1].error.startswith("depends on unapplied changes in ciprod-platform")
    lock.wheel_sha256 = wheel.sha256
    write_lock(lock_path(envs, "ciprod"), lock)
    report, _, _ = run(tmp_path / "d", steps, env="ciprod", environments=envs, repo=repo)
    assert report.ok and [s.status for s in report.stacks] == ["applied", "applied"]


def test_wheel_build_is_reproducible_and_hashed(tmp_path, wheel):
    again = artifacts.build_wheel(WHEELPKG, tmp_path, epoch=1700000000)
    assert again.sha256 == wheel.sha256 == artifacts.sha256_file(again.path)
    with pytest.raises(UserError, match="no pyproject.toml"):
        artifacts.build_wheel(tmp_path, tmp_path)


def test_backend_of_the_stack_must_be_the_environments(tmp_path, steps):
    cdktf = make_cdktf_out(tmp_path / "cdktf.out", "dev")
    with pytest.raises(UserError, match="'dev-platform' was synthesized with a 'local' backend but environment "
                                        "'dev' uses 'azurerm'"):
        run(tmp_path, steps, env="dev", environments=Path("environments"), cdktf=cdktf)


def test_missing_credentials_say_what_was_tried(monkeypatch):
    from mlkit.ops.azure_auth import check_credentials

    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no az / azd / pwsh logins to fall back on
    with pytest.raises(UserError) as e:
        check_credentials()
    msg = str(e.value)
    assert msg.startswith("no Azure credentials") and e.value.exit_code == 1
    assert "EnvironmentCredential" in msg and "WorkloadIdentityCredential" in msg and "AzureCliCredential" in msg


def test_unreachable_backend_is_named():
    from helpers import free_port

    from mlkit.ops.azure_auth import check_reachable

    port = free_port()  # a port that was free a moment ago: nothing listens there
    with pytest.raises(UserError, match=f"state backend unreachable: cannot connect to 127.0.0.1:{port}"):
        check_reachable("127.0.0.1", port, timeout=2)


def test_cli_reports_missing_terraform_and_bad_environment(tmp_path):
    from typer.testing import CliRunner

    from mlkit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["deploy", "--env", "ci", "--environments", str(ENVIRONMENTS),
                              "--terraform", str(tmp_path / "no-terraform"), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "terraform not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["deploy", "--env", "nope", "--environments", str(ENVIRONMENTS)])
    assert res.exit_code == 2 and "nope" in res.output and "Traceback" not in res.output


def test_synth_for_deploy_and_drift_creates_missing_parents_and_refuses_local(tmp_path) -> None:
    from envconfig.errors import UserError
    from envconfig.loader import load_environment
    from mlkit.ops.deploy import synth_with_stacks

    envs = Path(__file__).resolve().parent.parent / "environments"
    out = synth_with_stacks(load_environment("dev", envs, env={}), tmp_path / "fresh" / "drift-out" / "cdktf.out")
    assert "dev-platform" in json.loads((out / "manifest.json").read_text())["stacks"]
    with pytest.raises(UserError, match="kind 'local'"):
        synth_with_stacks(load_environment("local", envs, env={}), tmp_path / "local")
