"""`mlkit deploy --env ENV [--plan-only]`: synth, policy gate, wheel, terraform per stack
(and the scoring image, built in ACR before the serving stack)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from envconfig.loader import load_environment

from ..console import console, err, user_errors
from .options import ENVIRONMENTS


def deploy(
    env: str = typer.Option(..., "--env", help="environment to deploy, e.g. dev"),
    plan_only: bool = typer.Option(False, "--plan-only", help="plan every stack, write the plans, apply nothing"),
    environments: Path = ENVIRONMENTS,
    out: Path = typer.Option(None, "--out", help="where plans and summaries go [default: .mlkit/deploy/ENV]"),
    cdktf_out: Path = typer.Option(None, "--cdktf-out", help="use this synthesized directory instead of synthesizing"),
    workloads: Path = typer.Option(Path("workloads"), "--workloads", help="workloads package to build the wheel from"),
    terraform: str = typer.Option(None, "--terraform", envvar="MLKIT_TERRAFORM", help="terraform binary"),
    tracking_uri: str = typer.Option(None, "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                                     help="record the release in this MLflow (where `mlkit promote` reads it)"),
) -> None:
    """Deploy ENV: synth -> policy gate (packs + checkov on that output) -> workloads wheel (sha256) ->
    terraform init/plan/apply per stack.

    Before the serving stack: the scoring image (workloads/Dockerfile) is built and pushed with ACR Tasks.
    """
    from ..ops.deploy import default_steps
    from ..ops.deploy import deploy as run
    from ..ops.terraform import Terraform, find_terraform

    with user_errors():
        cfg = load_environment(env, environments)
        cfg.require_cloud("to deploy")
        tf = Terraform(find_terraform(terraform))
        out = out or Path(".mlkit/deploy") / env

        def progress(step: str) -> None:
            err.print(f"[dim]… {escape(step)}[/]")

        steps = default_steps(environments, workloads, out / "dist", progress)
        report = run(cfg, environments=environments, out=out, repo=Path.cwd(), steps=steps, tf=tf,
                     plan_only=plan_only, cdktf_out=cdktf_out, progress=progress)
        if report.gate and report.gate.status == "unavailable":
            err.print(f"[yellow]warning:[/] {report.gate.detail}")
        if report.image and report.image.status == "skipped":
            err.print(f"[yellow]note:[/] scoring image {report.image.image} not built: {escape(report.image.detail)}")
        console.print(report.markdown(), markup=False)
        console.print(f"plans and summary: {out}", markup=False)
        if not report.ok:
            raise typer.Exit(1)
        if not plan_only:
            _record(cfg, out, tracking_uri)


def _record(cfg, out: Path, tracking_uri: str | None) -> None:
    import json

    from ..ops.release import ReleaseRecord, record_release, release_experiment

    if not tracking_uri:
        err.print("[yellow]warning:[/] release not recorded in MLflow (no --tracking-uri / MLFLOW_TRACKING_URI): "
                  f"`mlkit promote --from {cfg.name}` will not know this release")
        return
    from mlflow import MlflowClient

    record = ReleaseRecord(**json.loads((out / "release.json").read_text()))
    run_id = record_release(MlflowClient(tracking_uri=tracking_uri), release_experiment(cfg), record)
    console.print(f"release recorded: {release_experiment(cfg)} run {run_id}", markup=False)
