"""`mlkit check` on the real stacks, with checkov: prod is clean, a planted violation fails naming rule and resource.

Each synth + checkov run costs seconds, so every scenario runs once per module and the tests
read its result. Needs .venv-checkov (scripts/setup.sh creates it from requirements/checkov.txt).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from envconfig.loader import load_environment  # noqa: E402
from mlkit.cli import app  # noqa: E402

pytestmark = pytest.mark.slow
PAT = "dapi" + "fedcba9876543210" * 2


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def prod_sarif(tmp_path_factory):
    out = tmp_path_factory.mktemp("sarif") / "prod.sarif"
    result = invoke("check", "--env", "prod", "--format", "sarif", "--out", str(out))
    return result, json.loads(out.read_text()) if out.exists() else None


@pytest.fixture(scope="module")
def violated_envs(tmp_path_factory) -> Path:
    """A copy of environments/ whose prod pool never terminates idle instances (MLK-DB-001)."""
    envs = tmp_path_factory.mktemp("envs") / "environments"
    shutil.copytree("environments", envs)
    prod = envs / "prod.yaml"
    text = prod.read_text()
    assert "      idle_minutes: 15\n" in text
    prod.write_text(text.replace("      idle_minutes: 15\n", "      idle_minutes: 10000\n"))
    return envs


@pytest.fixture(scope="module")
def violated_run(violated_envs):
    return invoke("check", "--env", "prod", "--environments", str(violated_envs))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The real prod stacks with public blob access turned on and a PAT as a job parameter."""
    from cdktn_provider_azurerm.storage_account import StorageAccount
    from cdktn_provider_databricks.job import Job

    from mlkit.ops.synth import synthesize

    def plant(stack, cfg):
        for node in stack.node.find_all():
            if isinstance(node, StorageAccount):
                node.allow_nested_items_to_be_public = True
            if isinstance(node, Job) and node.node.path.endswith("job-forecast/job"):
                node.add_override("parameter", [{"name": "api_token", "default": PAT}])

    cfg = load_environment("prod", "environments")
    return synthesize({"prod": cfg}, tmp_path_factory.mktemp("planted") / "cdktf.out", extra_hook=plant,
                      environments=Path("environments"), checkov=True).report


def test_prod_has_no_unsuppressed_findings(prod_sarif):
    result, sarif = prod_sarif
    assert result.exit_code == 0, result.output
    assert "prod: 0 unsuppressed error(s), 0 warning(s)" in result.output
    results = sarif["runs"][0]["results"]
    assert results, "prod has suppressed findings: they must be in the report with their reasons"
    for r in results:
        assert r.get("suppressions"), f"unsuppressed in prod: {r['ruleId']} {r['message']['text']}"
        assert len(r["suppressions"][0]["justification"]) >= 10


def test_prod_report_includes_checkov_results(prod_sarif):
    _, sarif = prod_sarif
    sources = {r["properties"]["source"] for r in sarif["runs"][0]["results"]}
    assert "checkov" in sources  # checkov ran (its suppressed findings are listed)


def test_sarif_validates_structurally(prod_sarif):
    _, sarif = prod_sarif
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    [run] = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids)) and "MLK-ST-003" in ids
    for r in rules:
        assert r["shortDescription"]["text"] and r["defaultConfiguration"]["level"] in ("error", "warning", "note")
    for res in run["results"]:
        assert res["ruleId"] in ids and ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note") and res["message"]["text"]
        [loc] = res["locations"]
        assert loc["logicalLocations"][0]["fullyQualifiedName"].startswith("prod-")
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"].endswith("cdk.tf.json") and phys["region"]["startLine"] >= 1


def test_violation_exits_non_zero_naming_rule_and_resource(violated_run):
    assert violated_run.exit_code == 1, violated_run.output
    out = violated_run.output
    assert "MLK-DB-001" in out
    assert re.search(r"databricks_instance_pool\.pool-default_pool_[0-9A-F]{8}", out)
    assert "idle_instance_autotermination_minutes is 10000; this environment allows at most 20" in out
    assert "check failed: unsuppressed errors in prod" in out


def test_planted_public_blob_access_fails_in_our_pack_and_checkov(planted):
    assert not planted.ok
    blocking = {(f.rule_id, f.address.split(".")[0]) for f in planted.blocking}
    assert ("MLK-ST-003", "azurerm_storage_account") in blocking
    assert ("CKV_AZURE_190", "azurerm_storage_account") in blocking  # checkov agrees, unsuppressed


def test_planted_secret_literal_in_a_job_parameter_fails(planted):
    [f] = [f for f in planted.blocking if f.rule_id == "MLK-GOV-003"]
    assert f.address.startswith("databricks_job.job-forecast_job_")
    assert f.path == "prod-workspace/job-forecast/job"
    assert "parameter[0].default holds a Databricks personal access token" in f.message
    assert PAT not in f.message  # never echo the secret
    assert f.file.endswith("prod-workspace/cdk.tf.json") and f.line


def test_staging_has_no_errors_and_dev_only_warnings(tmp_path):
    from mlkit.ops.synth import synthesize

    configs = {n: load_environment(n, "environments") for n in ("staging", "dev")}
    report = synthesize(configs, tmp_path / "cdktf.out", environments=Path("environments"), checkov=True).report
    assert report.counts("staging")["errors"] == 0, [(f.rule_id, f.address) for f in report.blocking]
    assert report.counts("dev")["errors"] == 0, [(f.rule_id, f.address) for f in report.blocking]
    for f in report.findings:
        if f.suppressed:
            assert len(f.suppressed_by.reason) >= 10


def test_json_format_and_bad_input(tmp_path, violated_envs):
    bad = invoke("check", "--env", "prod", "--format", "xml")
    assert bad.exit_code == 2 and "--format must be one of table, json, sarif" in bad.output
    missing = invoke("check", "--env", "nope")
    assert missing.exit_code == 2 and "no environment 'nope'" in missing.output
    assert "Traceback" not in bad.output + missing.output
    out = tmp_path / "r.json"
    res = invoke("check", "--env", "prod", "--environments", str(violated_envs), "--no-checkov",
                 "--format", "json", "--out", str(out))
    assert res.exit_code == 1 and "checkov was not run" in res.output
    doc = json.loads(out.read_text())
    assert doc["ok"] is False and doc["environments"]["prod"]["errors"] == 1
    [f] = [f for f in doc["findings"] if f["blocking"]]
    assert f["rule"] == "MLK-DB-001" and f["address"].startswith("databricks_instance_pool.")


def test_missing_checkov_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MLKIT_CHECKOV_VENV", str(tmp_path / "nowhere"))
    res = invoke("check", "--env", "prod")
    assert res.exit_code == 2
    assert "checkov is not installed" in res.output and "scripts/setup.sh" in res.output
