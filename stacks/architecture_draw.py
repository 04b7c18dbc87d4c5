"""Drawing the architecture view: a PNG/SVG with the ``diagrams`` library (Azure icons, Graphviz
``dot``), and Mermaid text for GitHub at the same level (same boxes, clusters and edges)."""

from __future__ import annotations

import base64
import importlib
import re
import shutil
import tempfile
from html import escape
from pathlib import Path

from .architecture import GRANT, IDENTITY, SUBSYSTEMS, USES, Architecture, Box

# style -> (colour, graphviz line style, what it means)
EDGE_STYLES: dict[str, tuple[str, str, str]] = {
    USES: ("#7B8894", "solid", "references (uses)"),
    GRANT: ("#C2410C", "solid", "permission: Azure role, Key Vault policy, UC grant, Databricks ACL"),
    IDENTITY: ("#7E22CE", "bold", "identity: federated credential, runs as"),
}
PRINCIPALS_TITLE = "Entra ID principals (outside the stacks)"
FORMATS = ("png", "svg")
DIRECTION = "TB"  # consumers (principals, workspace, serving) above what they use: a landscape picture


class GraphvizMissing(RuntimeError):
    """``dot`` is not on PATH: the architecture picture cannot be laid out."""


def icon_file(path: str) -> Path:
    """The PNG behind a diagrams node class ("azure.security.KeyVaults")."""
    import diagrams

    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(f"diagrams.{module}"), name)
    return Path(diagrams.__file__).resolve().parent.parent / cls._icon_dir / cls._icon


def _node_label(b: Box) -> str:
    """Icon above a bold title and the detail lines: an HTML label keeps icons small and text legible."""
    title, *rest = b.label.split("\n")
    colour = ' COLOR="#DC2626"' if b.unclassified else ""
    rows = [f'<TR><TD FIXEDSIZE="TRUE" WIDTH="40" HEIGHT="40"><IMG SRC="{icon_file(b.icon)}" SCALE="TRUE"/></TD></TR>',
            f'<TR><TD><FONT POINT-SIZE="11"{colour}><B>{escape(title)}</B></FONT></TD></TR>']
    if rest:
        text = "".join(f'{escape(line)}<BR ALIGN="LEFT"/>' for line in rest)
        rows.append(f'<TR><TD><FONT POINT-SIZE="9">{text}</FONT></TD></TR>')
    return f'<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="1">{"".join(rows)}</TABLE>>'


def _order(arch: Architecture) -> list[tuple[str, str, list[Box]]]:
    """(stack, subsystem, boxes) in drawing order; principals outside the stacks last."""
    groups = []
    for stack in arch.stacks:
        for subsystem in SUBSYSTEMS:
            members = [b for b in arch.boxes.values() if b.stack == stack and b.subsystem == subsystem]
            if members:
                groups.append((stack, subsystem, members))
    outside = [b for b in arch.boxes.values() if not b.stack]
    if outside:
        groups.append(("", "principals", outside))
    return groups


# An edge label longer than this becomes a number, spelled out in the legend: dot gives every
# label the room of a node, so long labels spread the picture beyond a screen.
SHORT_LABEL = 22


def _numbered(arch: Architecture) -> dict[int, int]:
    """Arrow index -> its number in the legend, for the arrows whose label is long."""
    long = [i for i, a in enumerate(arch.arrows) if "\n" in a.label or len(a.label) > SHORT_LABEL]
    return {i: n for n, i in enumerate(long, start=1)}


def _legend_label(arch: Architecture, numbers: dict[int, int]) -> str:
    used = {a.style for a in arch.arrows}
    styles = "".join(
        f'<TR><TD ALIGN="LEFT"><FONT COLOR="{colour}" POINT-SIZE="14">━━━▶</FONT></TD>'
        f'<TD ALIGN="LEFT" COLSPAN="2">{escape(meaning)}</TD></TR>'
        for key, (colour, _, meaning) in EDGE_STYLES.items() if key in used)
    rows = []
    for i, n in numbers.items():
        a = arch.arrows[i]
        ends = f"{_title(arch, a.source)} → {_title(arch, a.target)}"
        what = "<BR ALIGN='LEFT'/>".join(escape(line.strip()) for line in a.label.split("\n"))
        colour = EDGE_STYLES[a.style][0]
        rows.append(f'<TR><TD ALIGN="RIGHT" VALIGN="TOP"><FONT COLOR="{colour}"><B>{n}</B></FONT></TD>'
                    f'<TD ALIGN="LEFT" VALIGN="TOP">{escape(ends)}</TD>'
                    f'<TD ALIGN="LEFT" BALIGN="LEFT" VALIGN="TOP">{what}</TD></TR>')
    return (f'<<TABLE BORDER="1" COLOR="#AEB6BE" CELLBORDER="0" CELLSPACING="1" CELLPADDING="2">'
            f'<TR><TD COLSPAN="3" ALIGN="LEFT"><B>Legend</B></TD></TR>{styles}'
            f'<TR><TD COLSPAN="3" ALIGN="LEFT"><B>Numbered edges</B> (who may do what, on which part)</TD></TR>'
            f'{"".join(rows)}'
            f'<TR><TD COLSPAN="3" ALIGN="LEFT">Private endpoints and DNS zone links are listed in the box they serve.'
            f'</TD></TR></TABLE>>')


def _title(arch: Architecture, box_id: str) -> str:
    return arch.boxes[box_id].title


def render_architecture(arch: Architecture, path: Path) -> None:
    """Write ``path`` (.png or .svg). Raises GraphvizMissing when ``dot`` is not installed."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"{path}: the architecture picture is .png or .svg")
    if shutil.which("dot") is None:
        raise GraphvizMissing("Graphviz's `dot` is not on PATH (Debian: apt-get install graphviz; "
                              "./scripts/setup.sh installs it)")
    from diagrams import Cluster, Diagram, Edge, Node

    with tempfile.TemporaryDirectory() as tmp:
        stem = Path(tmp) / "architecture"
        graph_attr = {"pad": "0.3", "splines": "spline", "nodesep": "0.2", "ranksep": "0.5",
                      "fontsize": "20", "labelloc": "t", "dpi": "96", "newrank": "true"}
        title = (f"mlkit · {arch.env}: architecture — {len(arch.boxes)} boxes, {len(arch.arrows)} edges "
                 f"(from {arch.resources} resources, {arch.references} references)")
        with Diagram(title,
                     filename=str(stem), outformat=fmt, show=False, direction=DIRECTION, graph_attr=graph_attr,
                     node_attr={"fontsize": "11"}, edge_attr={"fontsize": "10"}):
            nodes = _draw_boxes(arch, Cluster, Node)
            numbers = _numbered(arch)
            for i, arrow in enumerate(arch.arrows):
                colour, style, _ = EDGE_STYLES[arrow.style]
                label = f"<<B>{numbers[i]}</B>>" if i in numbers else arrow.label
                attrs = {"color": colour, "fontcolor": colour, "style": style, "label": label, "fontsize": "12",
                         "penwidth": "1.6" if arrow.style != USES else "1.0"}
                nodes[arrow.source] >> Edge(**attrs) >> nodes[arrow.target]
            for source, target in arch.ties:  # a private endpoint or DNS link keeps its two boxes near
                nodes[source] >> Edge(style="invis") >> nodes[target]
            Node(label=_legend_label(arch, numbers), nodeid="legend", shape="plaintext", fixedsize="false", width="0",
                 height="0")
        produced = stem.with_suffix(f".{fmt}")
        if fmt == "svg":
            produced.write_text(_inline_images(produced.read_text()))
        else:
            _palette(produced)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(produced, path)


def _draw_boxes(arch: Architecture, Cluster, Node):  # noqa: N803 (the diagrams classes, imported lazily)
    nodes = {}
    by_stack: dict[str, list[tuple[str, list[Box]]]] = {}
    for stack, subsystem, members in _order(arch):
        by_stack.setdefault(stack, []).append((subsystem, members))
    for s, (stack, groups) in enumerate(by_stack.items()):
        title = arch.stack_titles.get(stack, stack) if stack else PRINCIPALS_TITLE
        outer = Cluster(title, graph_attr={"fontsize": "15", "style": "rounded,bold", "margin": "6",
                                           **({} if stack else {"rank": "same"})})
        outer.dot.name = f"cluster_stack{s}"  # subsystem titles repeat across stacks: cluster ids must not
        with outer:
            for g, (subsystem, members) in enumerate(groups):
                # One row per subsystem (rank=same, which dot honours in clusters under newrank): the
                # clusters stack like an architect's layers instead of stretching over every rank.
                inner = Cluster(SUBSYSTEMS.get(subsystem, ""),
                                graph_attr={"fontsize": "12", "margin": "6", "rank": "same"}) if stack else None
                if inner is not None:
                    inner.dot.name = f"cluster_stack{s}_{g}"
                    if subsystem == "other":
                        inner.dot.graph_attr.update(pencolor="#DC2626", fontcolor="#DC2626")
                    inner.__enter__()
                for b in members:  # ids in drawing order, not diagrams' random ones: the same input, the same picture
                    nodes[b.id] = Node(_node_label(b), nodeid=f"box{len(nodes)}", shape="plaintext", fixedsize="false",
                                       width="0", height="0", margin="0.05")
                if inner is not None:
                    inner.__exit__(None, None, None)
    return nodes


def _palette(png: Path) -> None:
    """Flat colours and text: a 256-colour palette keeps the PNG a fraction of the size, same look."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def _inline_images(svg: str) -> str:
    """Graphviz links the icons by absolute path; embed them so the SVG works anywhere."""
    def embed(match: re.Match[str]) -> str:
        data = base64.b64encode(Path(match.group(2)).read_bytes()).decode()
        return f'{match.group(1)}="data:image/png;base64,{data}"'
    return re.sub(r'(xlink:href|href)="(/[^"]+\.png)"', embed, svg)


# --------------------------------------------------------------------------- Mermaid

_MERMAID_ARROWS = {USES: "-->", GRANT: "==>", IDENTITY: "-.->"}


def _text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def architecture_mermaid(arch: Architecture) -> str:
    """The same boxes, clusters and labelled edges as the picture, as a Mermaid flowchart."""
    ids = {box_id: f"n{i}" for i, box_id in enumerate(arch.boxes)}
    stack_ids = {stack: f"s{i}" for i, stack in enumerate(arch.stacks)}
    lines = ["flowchart LR", "  %% edges: --> uses, ==> permission, -.-> identity (federated credential, runs as)"]
    current = None
    for stack, subsystem, members in _order(arch):
        if stack != current:
            if current is not None:
                lines.append("  end")
            sid = stack_ids.get(stack, "principals")
            title = arch.stack_titles.get(stack, stack) if stack else PRINCIPALS_TITLE
            lines.append(f'  subgraph {sid}["{_text(title)}"]')
            current = stack
        indent = "    "
        if stack:
            lines.append(f'    subgraph {stack_ids[stack]}_{subsystem}["{SUBSYSTEMS[subsystem]}"]')
            indent = "      "
        lines += [f'{indent}{ids[b.id]}["{_text(b.label)}"]' for b in members]
        if stack:
            lines.append("    end")
    if current is not None:
        lines.append("  end")
    styles = []
    for arrow in arch.arrows:
        label = f'|"{_text(arrow.label)}"|' if arrow.label else ""
        lines.append(f"  {ids[arrow.source]} {_MERMAID_ARROWS[arrow.style]}{label} {ids[arrow.target]}")
        styles.append(EDGE_STYLES[arrow.style][0])
    lines += [f"  linkStyle {i} stroke:{colour},color:{colour}" for i, colour in enumerate(styles)
              if colour != EDGE_STYLES[USES][0]]
    for b in arch.boxes.values():
        if b.unclassified:
            lines.append(f"  style {ids[b.id]} stroke:#DC2626,stroke-width:2px")
    return "\n".join(lines) + "\n"
