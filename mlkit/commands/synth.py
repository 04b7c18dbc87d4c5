"""`mlkit synth [--env ENV ...]`: environments -> CDK Terrain stacks -> Terraform JSON in cdktf.out/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.table import Table

from envconfig.environment import EnvironmentConfig
from envconfig.errors import UserError
from envconfig.loader import DEFAULT_DIR, load_all, load_environment

from ..console import console, user_errors

DEFAULT_OUT = Path("cdktf.out")


def synthesize(configs: dict[str, EnvironmentConfig], outdir: Path, stack_hook=None,
               environments: Path | None = None) -> list:
    """Build and synthesize the app; returns a StackSummary per stack written for these environments.

    ``environments``: where the release locks are (prod-like stacks check theirs at plan time)."""
    from envconfig.naming import NamingError
    from stacks.app import build_app, stack_names, summarize
    from stacks.errors import StackInputError

    Path(outdir).mkdir(parents=True, exist_ok=True)  # cdktn creates only the last directory level
    try:
        app = build_app(configs, str(outdir), stack_hook=stack_hook, environments=environments)
    except (StackInputError, NamingError) as e:
        raise UserError(f"cannot build the stacks: {e}") from None
    kept = _other_stacks(Path(outdir), set(stack_names(configs)), {n for n, c in configs.items()})
    app.synth()
    _keep_in_manifest(Path(outdir), kept)
    return summarize(outdir, set(stack_names(configs)))


def _other_stacks(outdir: Path, mine: set[str], envs: set[str]) -> dict[str, dict]:
    """Manifest entries of stacks this synth does not write (other environments), still on disk.

    cdktn rewrites manifest.json with the app's stacks only, so `mlkit synth --env dev` used to drop
    staging and prod from it although their stack directories were still there."""
    manifest = outdir / "manifest.json"
    try:
        stacks = json.loads(manifest.read_text()).get("stacks", {}) if manifest.is_file() else {}
    except (json.JSONDecodeError, AttributeError):
        return {}  # unreadable: cdktn's fresh one replaces it
    return {name: entry for name, entry in stacks.items()
            if name not in mine and not any(name.startswith(f"{e}-") for e in envs)
            and isinstance(entry, dict) and (outdir / str(entry.get("synthesizedStackPath", ""))).is_file()}


def _keep_in_manifest(outdir: Path, kept: dict[str, dict]) -> None:
    if not kept:
        return
    manifest = outdir / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["stacks"] = dict(sorted({**kept, **doc["stacks"]}.items()))
    manifest.write_text(json.dumps(doc, indent=2) + "\n")


def load_selected(envs: list[str] | None, environments: Path) -> dict[str, EnvironmentConfig]:
    if not envs:
        return load_all(environments)
    return {name: load_environment(name, environments) for name in dict.fromkeys(envs)}


def synth(
    env: list[str] = typer.Option(None, "--env", help="environment to synthesize (repeatable) [default: all]"),
    environments: Path = typer.Option(DEFAULT_DIR, "--environments", help="directory of environment files"),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="output directory (cdktn layout: stacks/<name>/cdk.tf.json)"),
    no_policy: bool = typer.Option(False, "--no-policy",
                                   help="write environments even when policy errors are unsuppressed"),
) -> None:
    """Synthesize the stacks (platform, workspace, serving) of the chosen environments.

    The policy packs run during the synth; an environment with unsuppressed error findings is
    refused (its stacks are not written) unless --no-policy is given.
    """
    from policies.gate import PolicyGate

    with user_errors():
        started = time.perf_counter()
        configs = load_selected(env, environments)
        gate = None if no_policy else PolicyGate(str(environments))
        summaries = synthesize(configs, out, stack_hook=gate.hook if gate else None, environments=environments)
        verdict = gate.enforce(out) if gate else None
        if verdict and verdict.refused:
            from stacks.app import stack_names

            # Every stack of a refused environment (the gate removed them all), whatever stacks it has.
            refused = set(stack_names({e: configs[e] for e in verdict.refused}))
            summaries = [s for s in summaries if s.name not in refused]
        elapsed = time.perf_counter() - started
        local = sorted(n for n, c in configs.items() if not c.is_cloud)
        table = Table(title=f"synthesized into {out}/", title_justify="left")
        table.add_column("stack")
        for column in ("resources", "data sources", "outputs"):
            table.add_column(column, justify="right")
        for s in summaries:
            table.add_row(s.name, str(s.resources), str(s.data_sources), str(s.outputs))
        if summaries:
            console.print(table)
        if local:
            console.print(f"no cloud stacks for {', '.join(local)} (kind: local)")
        console.print(f"{len(summaries)} stack(s), {sum(s.resources for s in summaries)} resources "
                      f"in {elapsed:.1f} s")
        if no_policy:
            console.print("policy gate skipped (--no-policy): run `mlkit check` before deploying")
        if verdict and verdict.refused:
            raise UserError(verdict.message() + f"\nnot written: {', '.join(sorted(refused))}", exit_code=1)
