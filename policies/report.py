"""The merged result of a policy run (our packs + checkov) and where each finding sits in the files."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from envconfig.synth_output import stack_files

from .model import Finding, Rule

if TYPE_CHECKING:
    from .suppressions import ActiveSuppression


@dataclass
class Report:
    envs: list[str]
    findings: list[Finding]
    suppressions: list["ActiveSuppression"]
    rules: dict[str, Rule]
    today: dt.date
    checkov_envs: list[str] = field(default_factory=list)
    checkov_version: str | None = None

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def for_env(self, env: str) -> list[Finding]:
        return [f for f in self.findings if f.env == env]

    def counts(self, env: str) -> dict[str, int]:
        fs = self.for_env(env)
        return {
            "errors": sum(1 for f in fs if f.severity == "error" and not f.suppressed),
            "warnings": sum(1 for f in fs if f.severity == "warning" and not f.suppressed),
            "suppressed": sum(1 for f in fs if f.suppressed),
            "mlkit": sum(1 for f in fs if f.source == "mlkit" and not f.suppressed),
            "checkov": sum(1 for f in fs if f.source == "checkov" and not f.suppressed),
        }

    def failing_envs(self) -> list[str]:
        return sorted({f.env for f in self.blocking})


# ------------------------------------------------------------------------------------- locations

_KEY = re.compile(r'^( *)"((?:[^"\\]|\\.)*)": ')


def block_lines(text: str) -> dict[str, tuple[int, int]]:
    """Terraform address -> (first line, last line) of its block in a cdktn-written (2-space) JSON file."""
    out: dict[str, tuple[int, int]] = {}
    keys: dict[int, str] = {}
    open_block: tuple[str, int, int] | None = None  # address, depth, start line
    lines = text.splitlines()
    for no, line in enumerate(lines, 1):
        m = _KEY.match(line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        if open_block and depth <= open_block[1]:
            out[open_block[0]] = (open_block[2], no - 1)
            open_block = None
        keys[depth] = m.group(2)
        for d in [d for d in keys if d > depth]:
            del keys[d]
        top = keys.get(1)
        addr = None
        if top == "resource" and depth == 3:
            addr = f"{keys[2]}.{keys[3]}"
        elif top == "data" and depth == 3:
            addr = f"data.{keys[2]}.{keys[3]}"
        elif top in ("provider", "output", "variable") and depth == 2:
            addr = f"{top}.{keys[2]}"
        if addr:
            open_block = (addr, depth, no)
    if open_block:
        out[open_block[0]] = (open_block[2], len(lines))
    return out


def locate(findings: list[Finding], outdir: Path) -> None:
    """Fill in ``file`` and ``line`` of each finding that names a stack and an address."""
    files = stack_files(outdir)
    index: dict[str, dict[str, tuple[int, int]]] = {}
    for f in findings:
        path = files.get(f.stack)
        if path is None or not f.address:
            continue
        if f.stack not in index:
            index[f.stack] = block_lines(path.read_text()) if path.is_file() else {}
        f.file = f.file or str(path)
        span = index[f.stack].get(f.address)
        if span and f.line is None:
            f.line = span[0]
