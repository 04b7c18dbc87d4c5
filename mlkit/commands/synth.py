"""`mlkit synth [--env ENV ...]`: environments -> CDK Terrain stacks -> Terraform JSON in cdktf.out/."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from envconfig.environment import EnvironmentConfig
from envconfig.errors import UserError
from envconfig.loader import load_all, load_environment

from ..console import console, user_errors
from .options import ENVIRONMENTS

DEFAULT_OUT = Path("cdktf.out")


def load_selected(envs: list[str] | None, environments: Path) -> dict[str, EnvironmentConfig]:
    if not envs:
        return load_all(environments)
    return {name: load_environment(name, environments) for name in dict.fromkeys(envs)}


def synth(
    env: list[str] = typer.Option(None, "--env", help="environment to synthesize (repeatable) [default: all]"),
    environments: Path = ENVIRONMENTS,
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="output directory (cdktn layout: stacks/<name>/cdk.tf.json)"),
    no_policy: bool = typer.Option(False, "--no-policy",
                                   help="write environments even when policy errors are unsuppressed"),
) -> None:
    """Synthesize the stacks (platform, workspace, serving) of the chosen environments.

    The policy packs run during the synth; an environment with unsuppressed error findings is
    refused (its stacks are not written) unless --no-policy is given.
    """
    from stacks.app import stack_names

    from ..ops.synth import refusal_message, refuse_failing, synthesize

    with user_errors():
        started = time.perf_counter()
        configs = load_selected(env, environments)
        result = refuse_failing(synthesize(configs, out, environments=environments, policies=not no_policy))
        summaries = result.stacks
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
        if result.refused:
            # Every stack of a refused environment (the gate removed them all), whatever stacks it has.
            refused = stack_names({e: configs[e] for e in result.refused})
            raise UserError(refusal_message(result) + f"\nnot written: {', '.join(sorted(refused))}", exit_code=1)
