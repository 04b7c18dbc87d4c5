"""What a deploy ships: the git commit and the workloads wheel, identified by sha256.

The wheel is built reproducibly (SOURCE_DATE_EPOCH = the commit time, from a clean copy of
the sources) so that building the same commit twice gives the same hash: that is what lets
a release lock written in staging be checked by the prod deploy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from envconfig.errors import UserError

# Fixed fallback (1980-01-01, the zip epoch) when there is no git history to take a time from.
FALLBACK_EPOCH = 315532800


@dataclass(frozen=True)
class GitInfo:
    sha: str | None
    dirty: bool
    commit_time: int | None


@dataclass(frozen=True)
class Wheel:
    path: Path
    sha256: str


def git_info(repo: Path) -> GitInfo:
    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    # Release locks are written next to the code they pin, so they do not make the tree dirty.
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)environments/*.lock.json")
    when = git("log", "-1", "--format=%ct")
    return GitInfo(sha, bool(status), int(when) if when else None)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_wheel(workloads_dir: Path, out_dir: Path, epoch: int | None = None) -> Wheel:
    """``pip wheel --no-deps`` of the workloads package into ``out_dir``; returns path + sha256."""
    workloads_dir = Path(workloads_dir)
    if not (workloads_dir / "pyproject.toml").exists():
        raise UserError(f"{workloads_dir}: no pyproject.toml; cannot build the workloads wheel", exit_code=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlkit-wheel-") as tmp:
        # A clean copy: stale build/ or egg-info dirs would leak old files into the wheel.
        src = Path(tmp) / "src"
        shutil.copytree(workloads_dir, src, ignore=shutil.ignore_patterns(
            "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache"))
        dest = Path(tmp) / "dist"
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch or FALLBACK_EPOCH)}
        p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(dest)],
                           capture_output=True, text=True, env=env)
        wheels = sorted(dest.glob("*.whl"))
        if p.returncode != 0 or not wheels:
            tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-10:])
            raise UserError(f"building the workloads wheel from {workloads_dir} failed:\n{tail}", exit_code=1)
        final = out_dir / wheels[0].name
        shutil.copy2(wheels[0], final)
    return Wheel(final, sha256_file(final))
