"""A report as a rich table, as JSON, or as SARIF 2.1.0 (for code scanning)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .model import Finding
from .report import Report

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"


def _suppression(f: Finding) -> dict[str, Any] | None:
    s = f.suppressed_by
    if s is None:
        return None
    return {"rule": s.rule, "target": s.target, "reason": s.reason, "origin": s.origin,
            "expires": s.expires.isoformat() if s.expires else None}


def to_json(report: Report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "date": report.today.isoformat(),
        "environments": {env: report.counts(env) for env in report.envs},
        "checkov": {"ran_for": report.checkov_envs, "version": report.checkov_version},
        "findings": [{
            "rule": f.rule_id, "severity": f.severity, "source": f.source, "title": f.title, "message": f.message,
            "env": f.env, "stack": f.stack, "path": f.path, "address": f.address, "file": f.file, "line": f.line,
            "blocking": f.blocking, "suppressed": _suppression(f), "fix": f.help,
        } for f in _ordered(report.findings)],
    }


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.env, f.suppressed, f.severity != "error", f.rule_id, f.address, f.path))


def print_table(report: Report, console: Console, show_suppressed: bool = True) -> None:
    for env in report.envs:
        fs = [f for f in _ordered(report.for_env(env)) if show_suppressed or not f.suppressed]
        c = report.counts(env)
        title = (f"{env}: {c['errors']} error(s), {c['warnings']} warning(s) unsuppressed "
                 f"({c['mlkit']} ours, {c['checkov']} checkov); {c['suppressed']} suppressed")
        if not fs:
            console.print(f"[green]{title}[/]")
            continue
        table = Table(title=title, title_justify="left", show_lines=False, expand=True)
        table.add_column("status", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        table.add_column("resource (address / construct path)", overflow="fold", ratio=2)
        table.add_column("finding", overflow="fold", ratio=3)
        for f in fs:
            if f.suppressed:
                status = "[dim]suppressed[/]"
                text = f"{f.message}\n[dim]suppressed {f.suppressed_by.where}: {f.suppressed_by.reason}[/]"
            else:
                status = "[bold red]ERROR[/]" if f.severity == "error" else "[yellow]warning[/]"
                text = f"{f.message}\n[dim]fix: {f.help}[/]" if f.help else f.message
            where = "\n".join(x for x in (f.address, f.path if f.path != f.address else "", f.file if not f.address
                                          else "") if x)
            table.add_row(status, f"{f.rule_id}\n[dim]{f.source}[/]", where or env, text)
        console.print(table)


def to_sarif(report: Report, base: Path | None = None) -> dict[str, Any]:
    """SARIF 2.1.0: one run, our rules and the checkov checks seen as driver rules."""
    base = (base or Path.cwd()).resolve()
    rules: dict[str, dict[str, Any]] = {}
    for r in report.rules.values():
        rules[r.id] = {
            "id": r.id, "name": r.id.replace("-", ""), "shortDescription": {"text": r.title},
            "fullDescription": {"text": r.why}, "help": {"text": f"{r.why} Fix: {r.fix}"},
            "defaultConfiguration": {"level": r.severity},
            "properties": {"pack": r.pack, "environments": r.environments, "checkov": list(r.checkov)},
        }
    for f in report.findings:
        if f.rule_id not in rules:
            rules[f.rule_id] = {"id": f.rule_id, "name": f.rule_id, "shortDescription": {"text": f.title},
                                "defaultConfiguration": {"level": "error"}, "properties": {"source": "checkov"}}
    order = list(rules)
    results = [_sarif_result(f, order, base) for f in _ordered(report.findings)]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {"name": "mlkit-check",
                                "version": "0.1.0", "rules": [rules[i] for i in order]}},
            "originalUriBaseIds": {"SRCROOT": {"uri": base.as_uri() + "/"}},
            "results": results,
        }],
    }


def _sarif_result(f: Finding, order: list[str], base: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.rule_id, "ruleIndex": order.index(f.rule_id),
        "level": f.severity if f.severity in ("error", "warning") else "note",
        "message": {"text": f"{f.message} [{f.env}]"},
        "properties": {"environment": f.env, "stack": f.stack, "constructPath": f.path, "source": f.source},
    }
    loc: dict[str, Any] = {}
    if f.file:
        uri = _relative(Path(f.file), base)
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri, "uriBaseId": "SRCROOT"}}
        if f.line:
            physical["region"] = {"startLine": f.line}
        loc["physicalLocation"] = physical
    logical = []
    if f.address:
        logical.append({"name": f.address.split(".")[-1], "fullyQualifiedName": f"{f.stack}/{f.address}",
                        "kind": "resource"})
    if f.path and f.path != f.address:
        logical.append({"fullyQualifiedName": f.path, "kind": "module"})
    if logical:
        loc["logicalLocations"] = logical
    if loc:
        result["locations"] = [loc]
    if f.suppressed:
        result["suppressions"] = [{"kind": "external" if not f.suppressed_by.on_construct else "inSource",
                                   "justification": f.suppressed_by.reason, "status": "accepted"}]
    return result


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), base)).as_posix()
    except ValueError:
        return path.resolve().as_posix()
