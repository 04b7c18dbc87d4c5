"""`mlkit check --env ENV`: synth with the policy packs, checkov on every stack, one merged verdict.

Exit codes: 0 no unsuppressed error (warnings never fail), 1 unsuppressed errors, 2 bad input.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from envconfig.errors import UserError
from envconfig.loader import load_all, load_environment

from ..console import console, err, user_errors
from .options import ENVIRONMENTS

FORMATS = ("table", "json", "sarif")


def check(
    env: list[str] = typer.Option(None, "--env", help="environment to check (repeatable) [default: every cloud one]"),
    environments: Path = ENVIRONMENTS,
    fmt: str = typer.Option("table", "--format", help="table, json or sarif"),
    out: Path = typer.Option(None, "--out", help="write the json/sarif report here instead of stdout"),
    synth_out: Path = typer.Option(None, "--synth-out", help="keep the synthesized stacks here [default: a temp dir]"),
    no_checkov: bool = typer.Option(False, "--no-checkov", help="run only our packs (says so in the output)"),
    rules: bool = typer.Option(False, "--rules", help="list every rule and exit"),
) -> None:
    """Check environments against the policy packs and checkov; non-zero exit on unsuppressed errors."""
    with user_errors():
        if fmt not in FORMATS:
            raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if rules:
            _print_rules()
            return
        configs = _load(env, environments)
        from policies.render import print_table, to_json, to_sarif

        from ..ops.synth import synthesize

        if synth_out is not None:
            report = synthesize(configs, synth_out, environments=environments, checkov=not no_checkov).report
        else:
            with tempfile.TemporaryDirectory(prefix="mlkit-check-") as tmp:
                # Same depth as cdktf.out/ so relative wheel paths in the stacks are unchanged.
                report = synthesize(configs, Path(tmp) / "cdktf.out", environments=environments,
                                    checkov=not no_checkov).report

        if fmt == "table":
            print_table(report, console)
        else:
            doc = to_json(report) if fmt == "json" else to_sarif(report)
            text = json.dumps(doc, indent=2) + "\n"
            if out:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text)
                err.print(f"{fmt} report written to {out}", markup=False)
            else:
                console.print(text, markup=False, end="", soft_wrap=True)
        if no_checkov:
            err.print("[yellow]note:[/] checkov was not run (--no-checkov): only the mlkit packs were checked")
        _verdict(report)
        if not report.ok:
            raise typer.Exit(1)


def _load(envs: list[str] | None, environments: Path):
    configs = {n: load_environment(n, environments) for n in dict.fromkeys(envs)} if envs else load_all(environments)
    if envs:
        for cfg in configs.values():
            cfg.require_cloud("to check")
    cloud = {n: c for n, c in configs.items() if c.is_cloud}
    if not cloud:
        raise UserError(f"no cloud environments in {environments}")
    return cloud


def _verdict(report) -> None:
    for env in report.envs:
        c = report.counts(env)
        colour = "red" if c["errors"] else "green"
        err.print(f"[{colour}]{env}[/]: {c['errors']} unsuppressed error(s), {c['warnings']} warning(s), "
                  f"{c['suppressed']} suppressed with a reason")
    if not report.ok:
        err.print(f"[bold red]check failed:[/] unsuppressed errors in {', '.join(report.failing_envs())}")


def _print_rules() -> None:
    from policies.engine import RULES

    table = Table(title=f"{len(RULES)} rules", title_justify="left")
    for col in ("id", "pack", "severity", "environments", "title", "checkov"):
        table.add_column(col, overflow="fold")
    for r in RULES.values():
        table.add_row(r.id, r.pack, r.severity, r.environments, r.title, ", ".join(r.checkov))
    console.print(table)
