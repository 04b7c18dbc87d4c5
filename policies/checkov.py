"""checkov on each synthesized stack, offline, and its failures as findings.

checkov lives in its own venv (``.venv-checkov``, pinned by requirements/checkov.txt, created by
scripts/setup.sh) because its pins clash with the kit's. One warm driver process runs checkov's
CLI entry point per stack (see checkov_driver.py).

Suppressions: checkov 3.3's terraform_json runner has no per-resource skips (it passes an empty
skip list to every check; JSON has no comments to carry ``checkov:skip``). So a suppression whose
target is the whole environment (``*``) is passed as ``--skip-check`` and checkov honours it;
any narrower suppression is applied to checkov's results after the run, by resource address
and construct path, exactly like ours.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .model import Finding

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().with_name("checkov_driver.py")


class CheckovUnavailable(Exception):
    """checkov's venv is missing or broken; the message says how to fix it."""


def venv_dir() -> Path:
    return Path(os.environ.get("MLKIT_CHECKOV_VENV", REPO / ".venv-checkov"))


def executable() -> Path:
    """The pinned checkov, or CheckovUnavailable saying how to install it."""
    venv = venv_dir()
    if not (venv / "bin" / "checkov").is_file() or not (venv / "bin" / "python").is_file():
        raise CheckovUnavailable(
            f"checkov is not installed ({venv}/bin/checkov is missing): run ./scripts/setup.sh, which creates "
            f"{venv.name} from requirements/checkov.txt, or pass --no-checkov")
    return venv / "bin" / "checkov"


@dataclass(frozen=True)
class Job:
    stack: str
    env: str
    file: Path
    skip: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        args = ["-f", str(self.file), "--framework", "terraform_json", "--skip-download", "-o", "json", "--quiet",
                "--compact"]
        if self.skip:
            args += ["--skip-check", ",".join(self.skip)]
        return args


class Checkov:
    """A started checkov driver. Start it early; :meth:`scan` when the files exist."""

    def __init__(self) -> None:
        exe = executable()
        env = dict(os.environ, CKV_SKIP_PACKAGE_UPDATE_CHECK="true", BC_SKIP_MAPPING="TRUE",
                   LOG_LEVEL="ERROR", PYTHONWARNINGS="ignore")
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen([str(exe.with_name("python")), "-P", str(DRIVER)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        self.version: str | None = None

    def _line(self) -> dict:
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line:
            self._stderr.seek(0)
            tail = "\n".join(self._stderr.read().strip().splitlines()[-15:])
            raise CheckovUnavailable(f"checkov stopped unexpectedly:\n{tail}")
        return json.loads(line)

    def scan(self, jobs: list[Job]) -> dict[str, dict]:
        """stack -> checkov's JSON report for that stack's file."""
        hello = self._line()
        if not hello.get("ready"):
            raise CheckovUnavailable(f"checkov cannot start in {venv_dir()}: {hello.get('error')}")
        self.version = hello.get("version")
        assert self._proc.stdin is not None
        for i, job in enumerate(jobs):
            self._proc.stdin.write(json.dumps({"id": i, "argv": job.argv()}) + "\n")
        self._proc.stdin.write("\n")
        self._proc.stdin.flush()
        out: dict[str, dict] = {}
        for _ in jobs:
            res = self._line()
            job = jobs[res["id"]]
            if res.get("error"):
                raise CheckovUnavailable(f"checkov failed on {job.file}: {res['error']}")
            out[job.stack] = res.get("output")
        return out

    def close(self) -> None:
        # Every result has been read by now; checkov's interpreter teardown (~1 s) is not worth waiting for.
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()

    def __enter__(self) -> "Checkov":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def failed_checks(output) -> list[dict]:
    """checkov -o json prints a dict per framework (or a list of them, or a bare summary when clean)."""
    reports = output if isinstance(output, list) else [output]
    out = []
    for r in reports:
        if isinstance(r, dict):
            out.extend((r.get("results") or {}).get("failed_checks") or [])
    return out


def resource_index(file: Path) -> dict[str, tuple[str, str]]:
    """logical id -> (Terraform address, construct path), read from the synthesized file."""
    doc = json.loads(file.read_text())
    out: dict[str, tuple[str, str]] = {}
    for section, prefix in (("resource", ""), ("data", "data.")):
        for rtype, named in (doc.get(section) or {}).items():
            for name, body in named.items():
                path = ((body.get("//") or {}).get("metadata") or {}).get("path", "")
                out[f"{prefix}{rtype}.{name}"] = (f"{prefix}{rtype}.{name}", path)
                out.setdefault(name, (f"{prefix}{rtype}.{name}", path))
    return out


_PATH = re.compile(r'"path":\s*"([^"]+)"')


def to_findings(output, job: Job, prod_like: bool) -> list[Finding]:
    """checkov failures -> findings: errors in prod-like environments, warnings elsewhere."""
    index = resource_index(job.file)
    findings = []
    for c in failed_checks(output):
        resource = str(c.get("resource", ""))
        # Python checks name "resource.<logical id>"; graph checks "<type>.<logical id>".
        name = resource.split(".", 1)[1] if resource.startswith("resource.") else resource
        address, path = index.get(name) or index.get(resource) or (resource, "")
        if not path:
            m = _PATH.search("".join(line for _, line in c.get("code_block") or []))
            path = m.group(1) if m else ""
        lines = c.get("file_line_range") or [None]
        findings.append(Finding(
            rule_id=c["check_id"], severity="error" if prod_like else "warning", title=c.get("check_name", ""),
            message=f"{c.get('check_name', '')} (checkov {c['check_id']})", env=job.env, stack=job.stack, path=path,
            address=address, source="checkov", file=str(job.file), line=lines[0], help=c.get("guideline") or ""))
    return findings
