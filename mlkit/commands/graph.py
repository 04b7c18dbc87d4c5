"""`mlkit graph --env ENV`: the environment's resources and their references, as Mermaid, SVG or PNG."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..config import DEFAULT_DIR, load_environment
from ..console import UserError, console, err, user_errors
from .synth import DEFAULT_OUT, synthesize

FORMATS = ("mermaid", "svg", "png")


def graph(
    env: str = typer.Option(..., "--env", help="environment to draw, e.g. dev"),
    fmt: str = typer.Option("mermaid", "--format", help="mermaid, svg or png"),
    out: Path = typer.Option(None, "--out", help="file to write [default: stdout for mermaid, "
                                                 "cdktf.out/<env>-graph.<format> otherwise]"),
    environments: Path = typer.Option(DEFAULT_DIR, "--environments", help="directory of environment files"),
    synth_dir: Path = typer.Option(DEFAULT_OUT, "--synth-dir", help="synthesized output to read (synthesized if missing)"),
) -> None:
    """Draw ENV's resources and the references between them, read from the synthesized Terraform JSON."""
    from stacks.app import stack_names
    from stacks.diagram import build_diagram, load_stacks, render_picture, to_mermaid

    with user_errors():
        if fmt not in FORMATS:
            raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
        cfg = load_environment(env, environments)
        if not cfg.is_cloud:
            raise UserError(f"environment {env!r} is kind 'local': it has no cloud stacks to draw")
        names = stack_names({env: cfg})  # every stack of the environment, from the one list the app builds
        if not _synthesized(synth_dir, names):
            err.print(f"[dim]… {synth_dir}/ has no {env} stacks yet: synthesizing {env}[/]")
            synthesize({env: cfg}, synth_dir)
        diagram = build_diagram(load_stacks(synth_dir, names))
        if fmt == "mermaid":
            text = to_mermaid(diagram)
            if out is None:
                console.print(text, markup=False, end="", soft_wrap=True)
                return
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        else:
            out = out or synth_dir / f"{env}-graph.{fmt}"
            out.parent.mkdir(parents=True, exist_ok=True)
            render_picture(diagram, out)
        console.print(f"{len(diagram.nodes)} resources, {len(diagram.edges)} references -> {out}", markup=False)


def _synthesized(outdir: Path, names: list[str]) -> bool:
    manifest = outdir / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        stacks = json.loads(manifest.read_text()).get("stacks", {})
    except json.JSONDecodeError:
        return False
    return all(n in stacks and (outdir / stacks[n]["synthesizedStackPath"]).is_file() for n in names)
