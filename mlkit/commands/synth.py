"""`mlkit synth [--env ENV ...]`: environments -> CDK Terrain stacks -> Terraform JSON in cdktf.out/."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from ..config import DEFAULT_DIR, EnvironmentConfig, load_all, load_environment
from ..console import UserError, console, user_errors

DEFAULT_OUT = Path("cdktf.out")


def synthesize(configs: dict[str, EnvironmentConfig], outdir: Path, stack_hook=None) -> list:
    """Build and synthesize the app; returns a StackSummary per stack written for these environments."""
    from stacks.app import build_app, stack_names, summarize
    from stacks.errors import StackInputError
    from stacks.naming import NamingError

    try:
        app = build_app(configs, str(outdir), stack_hook=stack_hook)
    except (StackInputError, NamingError) as e:
        raise UserError(f"cannot build the stacks: {e}") from None
    app.synth()
    return summarize(outdir, set(stack_names(configs)))


def load_selected(envs: list[str] | None, environments: Path) -> dict[str, EnvironmentConfig]:
    if not envs:
        return load_all(environments)
    return {name: load_environment(name, environments) for name in dict.fromkeys(envs)}


def synth(
    env: list[str] = typer.Option(None, "--env", help="environment to synthesize (repeatable) [default: all]"),
    environments: Path = typer.Option(DEFAULT_DIR, "--environments", help="directory of environment files"),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="output directory (cdktn layout: stacks/<name>/cdk.tf.json)"),
) -> None:
    """Synthesize the platform and workspace stacks of the chosen environments."""
    with user_errors():
        started = time.perf_counter()
        configs = load_selected(env, environments)
        summaries = synthesize(configs, out)
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
