"""Resources and their references, read back from synthesized Terraform JSON, drawn as a picture.

The synthesized configuration is the source (not the constructs), so the picture shows what
Terraform will see: ``${type.name.attr}`` references, ``depends_on``, and cross-stack references
(``data.terraform_remote_state...outputs.X`` resolved to the resource behind output X).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

_EXPRESSION = re.compile(r"\$\{(.*?)\}(?!\})")
_ADDRESS = re.compile(r"(?<![\w.-])(data\.[a-z][a-z0-9_]*\.[\w-]+|[a-z][a-z0-9_]*\.[\w-]+)(?:\.([A-Za-z_][\w]*))?")
_REMOTE_OUTPUT = re.compile(r"data\.terraform_remote_state\.[\w-]+\.outputs\.([\w-]+)")
# Attributes that carry a resource's own name, most specific first.
_NAME_ATTRIBUTES = ("name", "instance_pool_name", "path")


@dataclass(frozen=True)
class Node:
    key: str  # "<stack>:<terraform address>"
    stack: str
    address: str
    type: str
    label: str


@dataclass(frozen=True)
class Edge:
    source: str  # the referenced node
    target: str  # the node that references it
    attribute: str


@dataclass
class Diagram:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    # Each node's synthesized body (for readers that need more than the references, e.g. the
    # architecture view reads a role assignment's role) and, per output name, (stack, expression).
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add_edge(self, edge: Edge) -> None:
        if edge.source != edge.target and edge not in self.edges:
            self.edges.append(edge)

    def references(self, stack: str, text: str) -> Iterator[tuple[str, str]]:
        """(node key, attribute) of everything ``text`` refers to, following cross-stack outputs."""
        for expression in _EXPRESSION.findall(text):
            for output in _REMOTE_OUTPUT.findall(expression):
                for other_stack, value in self.outputs.get(output, []):
                    if other_stack != stack:
                        yield from self.references(other_stack, value)
            for address, attribute in _ADDRESS.findall(expression):
                if f"{stack}:{address}" in self.nodes:
                    yield f"{stack}:{address}", attribute


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k != "//":
                yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def _label(rtype: str, body: dict[str, Any]) -> str:
    short = rtype.split("_", 1)[1] if "_" in rtype else rtype
    for attr in _NAME_ATTRIBUTES:
        value = body.get(attr)
        if isinstance(value, str) and "${" not in value:
            return f"{short}\n{value}"
    path = body.get("//", {}).get("metadata", {}).get("path", "")
    return f"{short}\n{path.split('/', 1)[-1]}" if path else short


def _elements(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(address, type, body) of every resource, data source and provider in one stack document."""
    for rtype, items in doc.get("resource", {}).items():
        for name, body in items.items():
            yield f"{rtype}.{name}", rtype, body
    for rtype, items in doc.get("data", {}).items():
        for name, body in items.items():
            yield f"data.{rtype}.{name}", rtype, body
    for pname, configs in doc.get("provider", {}).items():
        for i, body in enumerate(configs if isinstance(configs, list) else [configs]):
            yield f"provider.{pname}" + (f".{i}" if i else ""), f"provider_{pname}", body


def build_diagram(stacks: dict[str, dict[str, Any]]) -> Diagram:
    """``stacks``: stack name -> its synthesized cdk.tf.json document."""
    diagram = Diagram()
    for stack, doc in stacks.items():
        for oname, out in doc.get("output", {}).items():
            diagram.outputs.setdefault(oname, []).extend((stack, s) for s in strings(out.get("value")))
        for address, rtype, body in _elements(doc):
            if rtype == "terraform_remote_state":
                continue  # drawn as the edges it stands for
            key = f"{stack}:{address}"
            diagram.nodes[key] = Node(key, stack, address, rtype, _label(rtype, body))
            diagram.bodies[key] = body

    for stack, doc in stacks.items():
        for address, rtype, body in _elements(doc):
            target = f"{stack}:{address}"
            if target not in diagram.nodes:
                continue
            for text in strings({k: v for k, v in body.items() if k != "depends_on"}):
                for source, attribute in diagram.references(stack, text):
                    diagram.add_edge(Edge(source, target, attribute))
            for dep in body.get("depends_on", []):
                if f"{stack}:{dep}" in diagram.nodes:
                    diagram.add_edge(Edge(f"{stack}:{dep}", target, "depends_on"))
    return diagram


# --------------------------------------------------------------------------- Mermaid


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def to_mermaid(diagram: Diagram) -> str:
    """A flowchart with one subgraph per stack; node ids are short, labels carry the names."""
    ids = {key: f"r{i}" for i, key in enumerate(diagram.nodes)}
    lines = ["flowchart LR"]
    for s, stack in enumerate(dict.fromkeys(n.stack for n in diagram.nodes.values())):
        lines.append(f'  subgraph s{s}["{stack}"]')
        for node in diagram.nodes.values():
            if node.stack == stack:
                lines.append(f'    {ids[node.key]}["{_mermaid_text(node.label)}"]')
        lines.append("  end")
    for e in diagram.edges:
        arrow = "-.->" if e.attribute == "depends_on" else "-->"
        label = f"|{e.attribute}|" if e.attribute else ""
        lines.append(f"  {ids[e.source]} {arrow}{label} {ids[e.target]}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- picture


def layered_layout(diagram: Diagram) -> dict[str, tuple[int, float]]:
    """Column = longest chain of references leading to the node; rows ordered to limit crossings."""
    incoming: dict[str, list[str]] = {k: [] for k in diagram.nodes}
    for e in diagram.edges:
        incoming[e.target].append(e.source)
    depth: dict[str, int] = {}

    def column(key: str, seen: frozenset[str] = frozenset()) -> int:
        if key not in depth:
            parents = [p for p in incoming[key] if p not in seen]
            depth[key] = 1 + max((column(p, seen | {key}) for p in parents), default=-1)
        return depth[key]

    for key in diagram.nodes:
        column(key)
    position: dict[str, tuple[int, float]] = {}
    for col in range(max(depth.values(), default=-1) + 1):
        members = [k for k in diagram.nodes if depth[k] == col]

        def barycenter(k: str) -> tuple[float, str, str]:
            ys = [position[p][1] for p in incoming[k] if p in position]
            return (sum(ys) / len(ys) if ys else -1.0, diagram.nodes[k].stack, k)

        for row, key in enumerate(sorted(members, key=barycenter)):
            position[key] = (col, float(row))
    return position


def render_picture(diagram: Diagram, path: Path) -> None:
    """SVG or PNG (by suffix) with matplotlib: boxes coloured by stack, arrows for references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    position = layered_layout(diagram)
    columns = max((c for c, _ in position.values()), default=0) + 1
    rows = max((r for _, r in position.values()), default=0) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 3.4 * columns), max(4.0, 0.75 * rows)))
    ax.set_xlim(-0.6, columns - 0.4)
    ax.set_ylim(rows - 0.4, -0.6)
    ax.axis("off")
    palette = ["#dbeafe", "#dcfce7", "#fef3c7", "#fce7f3", "#ede9fe", "#e0f2fe"]
    stacks = list(dict.fromkeys(n.stack for n in diagram.nodes.values()))
    colour = {s: palette[i % len(palette)] for i, s in enumerate(stacks)}
    for e in diagram.edges:
        (x0, y0), (x1, y1) = position[e.source], position[e.target]
        ax.annotate("", xy=(x1 - 0.3, y1), xytext=(x0 + 0.3, y0),
                    arrowprops=dict(arrowstyle="->", color="#6b7280", lw=0.7,
                                    linestyle="--" if e.attribute == "depends_on" else "-"))
    for key, node in diagram.nodes.items():
        x, y = position[key]
        ax.text(x, y, node.label, ha="center", va="center", fontsize=6.5, family="monospace",
                bbox=dict(boxstyle="round,pad=0.3", fc=colour[node.stack], ec="#374151", lw=0.6))
    handles = [plt.Rectangle((0, 0), 1, 1, fc=colour[s], ec="#374151") for s in stacks]
    ax.legend(handles, stacks, loc="upper left", bbox_to_anchor=(0, 1.02), ncol=len(stacks), fontsize=7,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
