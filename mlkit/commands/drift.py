"""`mlkit drift --env ENV`: drift report; exit 0 = no drift, 2 = drift, 1 = error (never 0 on error)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from envconfig.errors import ConfigError, UserError
from envconfig.loader import load_environment

from ..console import console, err, user_errors
from .options import ENVIRONMENTS


def _uc_schemas(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        parts = v.split(".")
        if len(parts) != 2 or not all(parts):
            raise UserError(f"--uc-schema {v!r}: expected CATALOG.SCHEMA", exit_code=1)
        out.append((parts[0], parts[1]))
    return out


def drift(
    env: str = typer.Option(..., "--env", help="environment to check"),
    environments: Path = ENVIRONMENTS,
    cdktf_out: Path = typer.Option(None, "--cdktf-out", help="use this synthesized directory instead of synthesizing"),
    out: Path = typer.Option(None, "--out", help="report directory [default: .mlkit/drift/ENV]"),
    allowlist: Path = typer.Option(None, "--allowlist", help="known false diffs (YAML) [default: the kit's]"),
    inventory: bool = typer.Option(True, "--inventory/--no-inventory", help="look for objects not in Terraform state"),
    databricks_host: str = typer.Option(None, "--databricks-host", help="workspace URL [default: from state]"),
    uc_schema: list[str] = typer.Option([], "--uc-schema", help="CATALOG.SCHEMA to inventory registered models in "
                                        "(repeatable) [default: the environment's model schema and those in Terraform state]"),
    terraform: str = typer.Option(None, "--terraform", envvar="MLKIT_TERRAFORM", help="terraform binary"),
) -> None:
    """Nightly drift check of ENV: refresh-only plan + plan per stack, unmanaged Azure/Databricks objects."""
    from ..ops.deploy import synth_with_stacks
    from ..ops.drift import DEFAULT_ALLOWLIST, load_allowlist
    from ..ops.drift_check import allowlist_variables, check, cloud_inventories
    from ..ops.terraform import Terraform, find_terraform

    # Exit 2 means "drift found", so every error, the user's included, is 1.
    with user_errors(exit_code=1):
        try:
            cfg = load_environment(env, environments)
            # terraform runs in each stack's directory: a relative --terraform path must not depend on it
            tf = Terraform(str(Path(find_terraform(terraform)).absolute()))
            out = out or Path(".mlkit/drift") / env
            allow = load_allowlist(allowlist or DEFAULT_ALLOWLIST, allowlist_variables(cfg))
            if cdktf_out is None:
                cdktf_out = synth_with_stacks(cfg, out / "cdktf.out", environments)
            inventories = cloud_inventories(cfg, databricks_host, _uc_schemas(uc_schema)) if inventory else {}
            report = check(cfg, cdktf_out, tf, out, allow, inventories,
                           progress=lambda s: err.print(f"[dim]… {s}[/]"))
        except (ConfigError, UserError):
            raise
        except Exception as e:  # SDK/HTTP failures: an error, never "no drift", never "drift"
            raise UserError(f"drift check failed: {type(e).__name__}: {e}", exit_code=1) from e
    console.print(report.markdown(), markup=False, soft_wrap=True)  # unwrapped: a wrapped line could split a value
    console.print(f"report: {out / 'drift.md'} and {out / 'drift.json'}", markup=False, soft_wrap=True)
    sys.exit(report.exit_code)
