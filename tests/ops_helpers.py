"""Helpers shared by the ops tests (not a conftest: that file belongs to the shared fixtures)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
TF_TEMPLATE = FIXTURES / "terraform" / "synth"  # a cdktf.out tree (that name is git-ignored)
ENVIRONMENTS = FIXTURES / "ops" / "environments"
WHEELPKG = FIXTURES / "ops" / "wheelpkg"


def make_cdktf_out(dest: Path, env: str) -> Path:
    """Copy the fixture synth output for ``env`` (names substituted) into ``dest``."""
    for src in TF_TEMPLATE.rglob("*"):
        if src.is_file():
            rel = str(src.relative_to(TF_TEMPLATE)).replace("__ENV__", env)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(src.read_text().replace("__ENV__", env))
    return dest


def edit_stack(cdktf_out: Path, stack: str, change) -> None:
    path = cdktf_out / "stacks" / stack / "cdk.tf.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def git_repo(path: Path) -> str:
    """A one-commit git repository; returns its HEAD sha."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "README").write_text("fixture\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(path)}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "fixture"]):
        subprocess.run(["git", *cmd], cwd=path, check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                          check=True).stdout.strip()


def copy_envs(dest: Path) -> Path:
    shutil.copytree(ENVIRONMENTS, dest)
    return dest
