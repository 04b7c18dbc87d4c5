"""Drift scenarios that provider-free resources can express, through the CLI with real terraform 1.11:
output-only changes (one sensitive), a re-serialized JSON output, a pending replace and a
sensitive attribute (``sensitive()``) changed. Each run is checked for leaked secrets in stdout
and in every file it wrote."""

from __future__ import annotations

import json
import shutil

import pytest
from ops_helpers import ENVIRONMENTS, edit_stack, make_cdktf_out
from typer.testing import CliRunner

from mlkit.cli import app
from mlkit.ops.terraform import Terraform, find_terraform, ordered
from envconfig.synth_output import read_stacks

pytestmark = [pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not on PATH"),
              pytest.mark.slow]
OLD_KEY, NEW_KEY = "s3cr3t-api-key-old-4410", "s3cr3t-api-key-new-4411"
OLD_TOKEN, NEW_TOKEN = "s3cr3t-input-token-a", "s3cr3t-input-token-b"
POLICY = {"spark_version": {"type": "fixed", "value": "15.4.x-scala2.12"}, "autotermination_minutes": {"value": 20}}


def baseline(doc):
    doc["output"].update({
        "job_url": {"value": "https://adb-1.azuredatabricks.net/jobs/101"},
        "api_key": {"value": OLD_KEY, "sensitive": True},
        "policy": {"value": json.dumps(POLICY)}})
    doc["resource"]["terraform_data"]["model"] = {"input": {"name": "forecast"}, "triggers_replace": ["v1"]}
    doc["resource"]["terraform_data"]["token"] = {"input": f'${{sensitive("{OLD_TOKEN}")}}'}


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    """The fixture environment with the extra outputs/resources, applied once."""
    cdktf = make_cdktf_out(tmp_path_factory.mktemp("applied") / "cdktf.out", "ci")
    edit_stack(cdktf, "ci-platform", baseline)
    tf = Terraform(find_terraform())
    for stack in ordered(read_stacks(cdktf)):
        tf.init(stack)
        tf.plan(stack, stack.workdir / "p.tfplan")
        tf.apply(stack, stack.workdir / "p.tfplan")
        (stack.workdir / "p.tfplan").unlink()
    return cdktf


def drift(applied, tmp_path, change):
    cdktf = tmp_path / "cdktf.out"
    shutil.copytree(applied, cdktf, symlinks=True)
    edit_stack(cdktf, "ci-platform", change)
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["drift", "--env", "ci", "--environments", str(ENVIRONMENTS), "--cdktf-out",
                                   str(cdktf), "--no-inventory", "--out", str(out)])
    report = json.loads((out / "drift.json").read_text()) if (out / "drift.json").exists() else None
    return res, report, out, cdktf


def no_secret_anywhere(res, out, *secrets):
    texts = [res.output] + [p.read_text() for p in out.rglob("*") if p.is_file()]
    assert sorted(p.name for p in out.iterdir()) == ["drift.json", "drift.md"]
    for s in secrets:
        assert not any(s in t for t in texts), f"{s} leaked"


def test_clean_after_apply(applied, tmp_path):
    res, report, out, _ = drift(applied, tmp_path, lambda doc: None)
    assert res.exit_code == 0 and report["items"] == [], res.output
    no_secret_anywhere(res, out, OLD_KEY, OLD_TOKEN)


def test_output_only_changes_are_drift_and_reformatted_json_is_not(applied, tmp_path):
    def change(doc):
        doc["output"]["job_url"]["value"] = "https://adb-1.azuredatabricks.net/jobs/102"
        doc["output"]["api_key"]["value"] = NEW_KEY
        doc["output"]["policy"]["value"] = json.dumps(dict(reversed(list(POLICY.items()))), indent=2)
    res, report, out, cdktf = drift(applied, tmp_path, change)
    assert res.exit_code == 2, res.output
    rows = {i["address"]: (i["kind"], i["change"], i["expected"], i["actual"]) for i in report["items"]}
    assert rows == {"output.job_url": ("pending", "changed", "https://adb-1.azuredatabricks.net/jobs/102",
                                       "https://adb-1.azuredatabricks.net/jobs/101"),
                    "output.api_key": ("pending", "changed", "(sensitive)", "(sensitive)")}
    assert [(i["address"], i["ignored_by"]) for i in report["ignored"]] == [("output.policy", "json-equivalent")]
    no_secret_anywhere(res, out, OLD_KEY, NEW_KEY, OLD_TOKEN)
    # terraform itself calls the re-serialized JSON a change (-detailed-exitcode 2); drift does not.
    only_policy = tmp_path / "only-policy"
    shutil.copytree(applied, only_policy, symlinks=True)
    edit_stack(only_policy, "ci-platform", lambda doc: doc["output"]["policy"].update(value=json.dumps(POLICY, indent=4)))
    [platform] = [s for s in ordered(read_stacks(only_policy)) if s.name == "ci-platform"]
    assert Terraform(find_terraform()).plan(platform, platform.workdir / "p.tfplan") == 2
    res = CliRunner().invoke(app, ["drift", "--env", "ci", "--environments", str(ENVIRONMENTS), "--cdktf-out",
                                   str(only_policy), "--no-inventory", "--out", str(tmp_path / "r2")])
    assert res.exit_code == 0 and "**no drift**" in res.output, res.output


def test_pending_replace_and_a_sensitive_attribute(applied, tmp_path):
    def change(doc):
        doc["resource"]["terraform_data"]["model"]["triggers_replace"] = ["v2"]
        doc["resource"]["terraform_data"]["token"]["input"] = f'${{sensitive("{NEW_TOKEN}")}}'
    res, report, out, _ = drift(applied, tmp_path, change)
    assert res.exit_code == 2, res.output
    rows = {(i["address"], i["attribute"]): (i["action"], i["change"], i["expected"], i["actual"],
                                             i["forces_replacement"]) for i in report["items"]}
    assert rows[("terraform_data.model", "triggers_replace[0]")] == ("replace", "changed", "v2", "v1", True)
    assert rows[("terraform_data.token", "input")] == ("update", "changed", "(sensitive)", "(sensitive)", False)
    # Terraform does not mark terraform_data.output, which copies the sensitive input: masked by value
    assert rows[("terraform_data.token", "output")] == ("update", "changed", "(known after apply)", "(sensitive)",
                                                        False)
    md = (out / "drift.md").read_text()
    assert "### `terraform_data.model` (ci-platform, pending): the apply **destroys and re-creates** it" in md
    assert "forces replacement" in md
    no_secret_anywhere(res, out, OLD_TOKEN, NEW_TOKEN, OLD_KEY)
