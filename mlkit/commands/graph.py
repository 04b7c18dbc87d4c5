"""`mlkit graph --env ENV`: the environment's architecture (or, with ``--level resources``, every
resource and reference), as Mermaid, SVG or PNG."""

from __future__ import annotations

from pathlib import Path

import typer

from envconfig.errors import UserError
from envconfig.loader import load_environment

from ..console import console, err, user_errors
from ..ops.synth import synthesize
from .options import ENVIRONMENTS
from .synth import DEFAULT_OUT

FORMATS = ("mermaid", "svg", "png")
LEVELS = ("architecture", "resources")


def graph(
    env: str = typer.Option(..., "--env", help="environment to draw, e.g. dev"),
    fmt: str = typer.Option("mermaid", "--format", help="mermaid, svg or png"),
    level: str = typer.Option("architecture", "--level",
                              help="architecture (services in subsystem clusters, permissions on the edges) "
                                   "or resources (every Terraform resource and reference)"),
    out: Path = typer.Option(None, "--out", help="file to write [default: stdout for mermaid, "
                                                 "cdktf.out/<env>-<level>.<format> otherwise]"),
    environments: Path = ENVIRONMENTS,
    synth_dir: Path = typer.Option(DEFAULT_OUT, "--synth-dir", help="synthesized output to read (synthesized if missing)"),
) -> None:
    """Draw ENV's architecture (or every resource), read from the synthesized Terraform JSON."""
    from stacks.app import stack_names
    from stacks.diagram import build_diagram
    from envconfig.synth_output import has_stacks, load_configs

    with user_errors():
        if fmt not in FORMATS:
            raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
        if level not in LEVELS:
            raise UserError(f"--level {level!r}: use one of {', '.join(LEVELS)}")
        cfg = load_environment(env, environments)
        cfg.require_cloud("to draw")
        names = stack_names({env: cfg})  # every stack of the environment, from the one list the app builds
        if not has_stacks(synth_dir, names):
            err.print(f"[dim]… {synth_dir}/ has no {env} stacks yet: synthesizing {env}[/]")
            synthesize({env: cfg}, synth_dir, environments=environments, policies=False)
        diagram = build_diagram(load_configs(synth_dir, names))
        if level == "resources":
            _draw_resources(diagram, env, fmt, out, synth_dir)
        else:
            _draw_architecture(diagram, cfg, fmt, out, synth_dir)


def _write_text(text: str, out: Path | None) -> bool:
    """Mermaid to ``out``, or to stdout when there is none (then nothing more is printed)."""
    if out is None:
        console.print(text, markup=False, end="", soft_wrap=True)
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return True


def _draw_resources(diagram, env: str, fmt: str, out: Path | None, synth_dir: Path) -> None:
    from stacks.diagram import render_picture, to_mermaid

    if fmt == "mermaid":
        if not _write_text(to_mermaid(diagram), out):
            return
    else:
        out = out or synth_dir / f"{env}-resources.{fmt}"
        out.parent.mkdir(parents=True, exist_ok=True)
        render_picture(diagram, out)
    console.print(f"{len(diagram.nodes)} resources, {len(diagram.edges)} references -> {out}", markup=False)


def _draw_architecture(diagram, cfg, fmt: str, out: Path | None, synth_dir: Path) -> None:
    from stacks.architecture import build_architecture
    from stacks.architecture_draw import GraphvizMissing, architecture_mermaid, render_architecture

    arch = build_architecture(cfg.name, diagram, principals_of(cfg))
    if fmt == "mermaid":
        if not _write_text(architecture_mermaid(arch), out):
            return
    else:
        out = out or synth_dir / f"{cfg.name}-architecture.{fmt}"
        try:
            render_architecture(arch, out)
        except GraphvizMissing as e:
            raise UserError(f"{e}; or draw --format mermaid, or --level resources (matplotlib)") from None
    unclassified = sorted({b.title for b in arch.boxes.values() if b.unclassified})
    console.print(f"{len(arch.boxes)} boxes, {len(arch.arrows)} edges (from {arch.resources} resources, "
                  f"{arch.references} references) -> {out}", markup=False, soft_wrap=True)
    if unclassified:
        err.print(f"[yellow]unclassified Terraform types, drawn under 'other': {', '.join(unclassified)} "
                  f"(add them to stacks/architecture.py TYPES)[/]")


def principals_of(cfg):
    """Who the literal object/application ids in the stacks are, from the environment's principals."""
    from stacks.architecture import Principal

    p = cfg.principals
    if p is None:
        return {}
    named = {p.deployer: Principal("deployer (service principal)")}
    if p.deployer_application_id:
        named[p.deployer_application_id] = named[p.deployer]  # the same principal, by application id
    if p.databricks:
        named[p.databricks] = Principal("AzureDatabricks (enterprise app)")
    named.update({oid: Principal(f"group {name}", group=True) for name, oid in p.groups.items()})
    return named
