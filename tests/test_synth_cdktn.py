"""The CDK Terrain CLI runs this app with the project's own interpreter and gets the same stacks.

`scripts/cdktn` (installed by scripts/setup.sh: cdktn-cli on Node 22 from npm, in .tools/cdktn) is
run with a PATH that has no python of the project on it, so cdktf.json's "app" must name the venv's.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".tools" / "cdktn" / "node_modules" / ".bin" / "cdktn"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CLI.exists(), reason="cdktn CLI not installed (./scripts/setup.sh installs it)")]


def _bare_env(**extra: str) -> dict[str, str]:
    # /usr/local/bin only for terraform's version probe; no venv on PATH.
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **extra}


def _stacks(outdir: Path) -> dict[str, dict]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {name: json.loads((outdir / e["synthesizedStackPath"]).read_text()) for name, e in manifest["stacks"].items()}


def test_cdktn_app_is_the_venvs_interpreter() -> None:
    assert json.loads((REPO / "cdktf.json").read_text())["app"] == ".venv/bin/python main.py"


def test_cdktn_synth_and_list_produce_the_stacks_of_python_main(tmp_path) -> None:
    ours = tmp_path / "main"
    p = subprocess.run([str(REPO / ".venv/bin/python"), "main.py"], cwd=REPO, capture_output=True, text=True,
                       env=_bare_env(MLKIT_SYNTH_OUT=str(ours)))
    assert p.returncode == 0, p.stderr
    theirs = tmp_path / "cdktn"
    p = subprocess.run([str(REPO / "scripts/cdktn"), "synth", "--output", str(theirs)], cwd=REPO,
                       capture_output=True, text=True, env=_bare_env(), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert _stacks(theirs) == _stacks(ours)  # the same Terraform JSON, stack by stack
    p = subprocess.run([str(REPO / "scripts/cdktn"), "list"], cwd=REPO, capture_output=True, text=True,
                       env=_bare_env(), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    listed = {line.split()[0] for line in p.stdout.splitlines() if line.strip() and "cdktf.out/stacks/" in line}
    assert listed == set(_stacks(ours))
    assert any(n.startswith("prod-") for n in listed)
