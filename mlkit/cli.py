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
from .commands import graph as _graph  # noqa: E402
from .commands import synth as _synth  # noqa: E402

app.command("graph")(_graph.graph)
app.command("synth")(_synth.synth)
from .commands import deploy as _deploy, drift as _drift  # noqa: E402  (ops: issue 6)
app.command("deploy")(_deploy.deploy)
app.command("drift")(_drift.drift)
from .commands import check as _check  # noqa: E402  (policies: issue 3)
app.command("check")(_check.check)
from .commands import promote as _promote  # noqa: E402  (ops: issue 6)
app.command("promote")(_promote.promote)
from .commands import run as _run  # noqa: E402

app.command("run")(_run.run)
from .commands import serve as _serve; app.command("serve")(_serve.serve)  # noqa: E402,E702  (serving: issue 5)
