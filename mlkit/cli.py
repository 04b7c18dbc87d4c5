"""The `mlkit` command line. Each command group lives in mlkit/commands/<name>.py."""

from __future__ import annotations

import os

# Secure, quiet defaults for everything this process starts (Terraform/CDK telemetry off).
os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import typer  # noqa: E402

from .commands import check, deploy, drift, env, graph, promote, run, serve, stop, synth  # noqa: E402

app = typer.Typer(
    help="mlkit: stand up the ML platform per environment and run its jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# In the order a platform engineer meets them: build, verify, run locally, ship, operate.
app.command("synth")(synth.synth)
app.command("check")(check.check)
app.command("graph")(graph.graph)
app.command("run")(run.run)
app.command("serve")(serve.serve)
app.command("stop")(stop.stop)
app.command("deploy")(deploy.deploy)
app.command("promote")(promote.promote)
app.command("drift")(drift.drift)
app.add_typer(env.app, name="env")
