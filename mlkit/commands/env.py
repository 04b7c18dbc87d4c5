"""`mlkit env show|diff|schema`: read the environment files the way every other command does."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from rich.table import Table

from envconfig.diff import diff_environments
from envconfig.loader import json_schema, load_environment

from ..console import console, user_errors
from .options import ENVIRONMENTS

app = typer.Typer(help="Inspect environments: resolved config, differences, schema.", no_args_is_help=True)




@app.command("show")
def show(
    env: str = typer.Argument(..., help="environment name, e.g. dev"),
    environments: Path = ENVIRONMENTS,
    fmt: str = typer.Option("yaml", "--format", help="yaml or json"),
) -> None:
    """Print the resolved config of ENV (inheritance merged, ${VARS} resolved, defaults filled)."""
    with user_errors():
        cfg = load_environment(env, environments)
        data = cfg.model_dump(mode="json")
        if fmt == "json":
            console.print_json(json.dumps(data))
        else:
            console.print(yaml.safe_dump(data, sort_keys=False), markup=False, end="")


@app.command("diff")
def diff(
    a: str = typer.Argument(..., help="first environment"),
    b: str = typer.Argument(..., help="second environment"),
    environments: Path = ENVIRONMENTS,
    fmt: str = typer.Option("table", "--format", help="table or json"),
) -> None:
    """Show how two environments differ, field by field."""
    with user_errors():
        ca, cb = load_environment(a, environments), load_environment(b, environments)
        rows = diff_environments(ca.model_dump(mode="json"), cb.model_dump(mode="json"))
        if fmt == "json":
            console.print_json(json.dumps([{"field": f, a: va, b: vb} for f, va, vb in rows]))
            return
        table = Table(title=f"{a} vs {b}: {len(rows)} field(s) differ")
        table.add_column("field", overflow="fold")
        table.add_column(a)
        table.add_column(b)
        for f, va, vb in rows:
            table.add_row(f, json.dumps(va), json.dumps(vb))
        console.print(table)


@app.command("schema")
def schema(out: Path = typer.Option(None, "--out", help="write to this file instead of stdout")) -> None:
    """The JSON schema of an environment file (environments/schema.json is generated from it)."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        console.print(text, markup=False, end="")
