"""The drift scenario suite: `mlkit drift` through its CLI with a stand-in `terraform` that answers
`show -json` with Terraform 1.11 plan documents, one directory per scenario
(tests/fixtures/ops/drift_scenarios/<name>/: the documents, expect.yaml, optionally allowlist.yaml).

Each scenario asserts the exit code, the verdict, every row (kind, address, attribute, change,
ignoring rule, protected category), Markdown excerpts, and that no sensitive value reaches
stdout or any file the run wrote."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml
from ops_helpers import ENVIRONMENTS, FIXTURES, make_cdktf_out
from typer.testing import CliRunner

from mlkit.cli import app
from mlkit.ops.drift import DEFAULT_ALLOWLIST

SCENARIOS = FIXTURES / "ops" / "drift_scenarios"
STAND_IN = SCENARIOS / "terraform"
NAMES = sorted(p.parent.name for p in SCENARIOS.glob("*/expect.yaml"))


@pytest.fixture(scope="module")
def cdktf(tmp_path_factory):
    return make_cdktf_out(tmp_path_factory.mktemp("scenarios") / "cdktf.out", "ci")


def run(name, cdktf, out, monkeypatch):
    monkeypatch.setenv("MLKIT_SCENARIO", str(SCENARIOS / name))
    args = ["drift", "--env", "ci", "--environments", str(ENVIRONMENTS), "--cdktf-out", str(cdktf),
            "--no-inventory", "--out", str(out), "--terraform", str(STAND_IN)]
    if (SCENARIOS / name / "allowlist.yaml").exists():
        args += ["--allowlist", str(SCENARIOS / name / "allowlist.yaml")]
    return CliRunner().invoke(app, args)


def row(i):
    return " | ".join([i["kind"], i["address"], i["attribute"], i["change"], i["ignored_by"] or "-",
                       i["category"] or "-"])


@pytest.mark.parametrize("name", NAMES)
def test_scenario(name, cdktf, tmp_path, monkeypatch):
    expect = yaml.safe_load((SCENARIOS / name / "expect.yaml").read_text())
    out = tmp_path / "report"
    res = run(name, cdktf, out, monkeypatch)
    assert res.exit_code == expect["exit"], res.output
    if expect["exit"] == 1:
        assert expect["error"] in res.output
        assert "Traceback" not in res.output
        assert not (out / "drift.json").exists()  # an error leaves no report that could be read as a verdict
    else:
        report = json.loads((out / "drift.json").read_text())
        assert report["drift"] is (expect["exit"] == 2) and report["exit_code"] == expect["exit"]
        assert sorted(row(i) for i in report["items"] + report["ignored"]) == sorted(expect["rows"])
        assert ("**no drift**" in res.output) is (expect["exit"] == 0)
        md = (out / "drift.md").read_text()
        for excerpt in expect.get("markdown", []):
            assert excerpt in md
    written = [res.output] + [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    for secret in expect["secrets"]:
        assert not any(secret in text for text in written), f"{secret} leaked"


def test_stale_report_is_removed_when_the_next_run_fails(cdktf, tmp_path, monkeypatch):
    out = tmp_path / "report"
    assert run("run-as-switched-to-person", cdktf, out, monkeypatch).exit_code == 2
    assert run("not-a-plan-empty", cdktf, out, monkeypatch).exit_code == 1
    assert not (out / "drift.json").exists() and not (out / "drift.md").exists()


def test_every_allowlist_rule_has_an_ignore_and_a_must_report_scenario():
    covered: dict[str, set] = {}
    for name in NAMES:
        for rule, role in (yaml.safe_load((SCENARIOS / name / "expect.yaml").read_text()).get("covers") or {}).items():
            covered.setdefault(rule, set()).add(role)
    rules = [r["id"] for r in yaml.safe_load(DEFAULT_ALLOWLIST.read_text())["attributes"]]
    assert {r: covered.get(r, set()) for r in rules} == {r: {"ignore", "report"} for r in rules}


def test_scenario_documents_are_what_the_builder_writes():
    spec = importlib.util.spec_from_file_location("drift_scenarios_build", SCENARIOS / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    stale = [str(p.relative_to(SCENARIOS)) for p, text in build.render().items() if p.read_text() != text]
    assert stale == [], "re-run tests/fixtures/ops/drift_scenarios/build.py"


def test_docs_excerpts_are_what_the_report_renders(cdktf, tmp_path, monkeypatch):
    from pathlib import Path

    from mlkit.ops.drift import DriftReport, load_allowlist, unmanaged_items
    from mlkit.ops.inventory import CloudObject

    docs = (Path(__file__).parents[1] / "docs" / "day2.md").read_text()
    assert run("permissions-reordered-with-new-grant", cdktf, tmp_path / "r", monkeypatch).exit_code == 2
    md = (tmp_path / "r" / "drift.md").read_text()
    arm = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mlk-prod-weu/providers"
    objs = [CloudObject("azure", "Microsoft.Compute/virtualMachines", f"{arm}/Microsoft.Compute/virtualMachines/vm-debug",
                        "vm-debug"), CloudObject("databricks", "job", "202", "hand-made-job"),
            CloudObject("databricks", "registered_model", "prod.models.forecast_copy", "prod.models.forecast_copy"),
            CloudObject("databricks", "cluster", "0101-job", "job-101-run-1", "JOB")]
    md += DriftReport("prod", unmanaged_items(objs, load_allowlist())).markdown()
    rendered = [line for line in md.splitlines() if line.startswith(("| `", "| azure", "| databricks", "### ", "**"))]
    missing = [line for line in rendered if line not in docs and not line.startswith("**no drift")
               and "unmanaged object(s)**" not in line]
    assert missing == []


def test_bad_uc_schema_option_is_an_error(cdktf, tmp_path, monkeypatch):
    monkeypatch.setenv("MLKIT_SCENARIO", str(SCENARIOS / "clean"))
    res = CliRunner().invoke(app, ["drift", "--env", "ci", "--environments", str(ENVIRONMENTS), "--cdktf-out",
                                   str(cdktf), "--out", str(tmp_path), "--terraform", str(STAND_IN),
                                   "--uc-schema", "models"])
    assert res.exit_code == 1 and "--uc-schema 'models': expected CATALOG.SCHEMA" in res.output
