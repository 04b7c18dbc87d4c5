"""`mlkit promote --from A --to B`: verify A's release, lock it for B, copy approved models to B."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.table import Table

from envconfig.errors import UserError
from envconfig.loader import load_environment

from ..console import console, err, user_errors
from .options import ENVIRONMENTS


def promote(
    source: str = typer.Option(..., "--from", help="environment to promote from, e.g. staging"),
    target: str = typer.Option(..., "--to", help="environment to promote to, e.g. prod"),
    from_uri: str = typer.Option(..., "--from-uri", help="MLflow tracking/registry URI of the source, "
                                 "e.g. databricks-uc://staging (Unity Catalog through a profile using Entra ID)"),
    to_uri: str = typer.Option(..., "--to-uri", help="MLflow tracking/registry URI of the target"),
    update_lock: bool = typer.Option(False, "--update-lock", help="replace the target's lock with the source's "
                                     "current release (otherwise a different existing lock is refused as stale)"),
    environments: Path = ENVIRONMENTS,
    aml_uri: str = typer.Option(None, "--aml-uri", help="MLflow URI of the target's Azure ML workspace (https://...; "
                                "default: from the environment, when its ml_workspace registers models)"),
) -> None:
    """Verify A's release passed its gates, write B's release lock, copy the approved models, set `champion`."""
    from azure.core.exceptions import ClientAuthenticationError
    from mlflow.exceptions import MlflowException

    from ..ops.promote import aml_registry, registry_client
    from ..ops.promote import promote as run

    with user_errors():
        a, b = load_environment(source, environments), load_environment(target, environments)
        for option, uri in (("--from-uri", from_uri), ("--to-uri", to_uri)):
            if not re.match(r"^(https?|databricks|databricks-uc)://", uri):
                raise UserError(f"{option} {uri!r}: give the environment's MLflow registry as http(s)://host:port, "
                                "databricks-uc://<profile> (Unity Catalog) or databricks://<profile>", exit_code=1)
        # A registry that does not answer should fail in seconds, not after MLflow's minutes of retries.
        from ..local.mlflow_server import bound_client_retries

        bound_client_retries()
        src, dst = registry_client(from_uri), registry_client(to_uri)
        try:
            aml, aml_token = aml_registry(b, aml_uri)
        except ClientAuthenticationError as e:
            raise _no_aml_token(b, e) from None
        try:
            res = run(a, b, environments=environments, src=src, dst=dst, src_uri=from_uri, update_lock=update_lock,
                      same_registry=from_uri == to_uri,
                      progress=lambda s: err.print(f"[dim]… {s}[/]"), aml=aml, aml_token=aml_token)
        except MlflowException as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"the MLflow registry did not answer as expected ({from_uri} -> {to_uri}): "
                            f"{first[:400]}", exit_code=1) from None
        except ClientAuthenticationError as e:  # issue 13: no token for B's Azure ML workspace
            raise _no_aml_token(b, e) from None
        table = Table(title=f"mlkit env diff {source} {target}: {len(res.diff)} field(s) differ")
        for col in ("field", source, target, "expected?"):
            table.add_column(col, overflow="fold")
        for f, va, vb in res.diff:
            table.add_row(f, json.dumps(va), json.dumps(vb), "[bold red]UNEXPECTED[/]" if f in res.unexpected else "yes")
        console.print(table)
        if res.unexpected:
            err.print(f"[yellow]warning:[/] {len(res.unexpected)} difference(s) outside what is expected to differ "
                      f"(sizes, names, grants): {', '.join(res.unexpected)}")
        lock = res.lock
        console.print(f"release lock {'written' if res.lock_written else 'unchanged'}: "
                      f"{environments}/{target}.lock.json (git {lock.git_sha}, wheel {lock.wheel_sha256})", markup=False)
        for c in res.copies:
            how = "already there" if c["reused"] else "copied"
            console.print(f"  {c['model']} v{c['source_version']} -> {target} v{c['version']} ({how}); champion "
                          f"= v{c['version']}", markup=False)
        for r in res.aml:
            console.print(f"  Azure ML {r['model']} v{r['version']} ({'already there' if r['reused'] else 'registered'})",
                          markup=False)


def _no_aml_token(b, e) -> UserError:
    return UserError(f"no Entra ID token for {b.name}'s Azure ML workspace (sign in with `az login`, or run with a "
                     f"managed identity or OIDC login): {str(e).splitlines()[0][:300]}", exit_code=1)
