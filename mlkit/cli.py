"""The `mlkit` command line. Each command group lives in mlkit/commands/<name>.py."""

from __future__ import annotations

import os

# Secure, quiet defaults for everything this process starts (Terraform/CDK telemetry off).
os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import typer  # noqa: E402

from .commands import env  # noqa: E402

app = typer.Typer(
    help="mlkit: stand up the ML platform per environment and run its jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(env.app, name="env")

# Command groups register here, one line each (keep this list sorted).
