"""`mlkit graph`'s architecture view: the type table, the folding, the Mermaid text and the picture."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from envconfig.loader import load_environment  # noqa: E402
from mlkit.cli import app  # noqa: E402
from mlkit.commands.graph import principals_of  # noqa: E402
from stacks.app import stack_names  # noqa: E402
from stacks.architecture import TYPES, Architecture, build_architecture, type_key  # noqa: E402
from stacks.architecture_draw import architecture_mermaid, render_architecture  # noqa: E402
from stacks.diagram import Diagram, build_diagram  # noqa: E402
from envconfig.synth_output import load_configs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENTS = REPO / "environments"
CLOUD = ("dev", "staging", "prod")
runner = CliRunner()
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz `dot` is not on PATH (./scripts/setup.sh installs Debian's graphviz)")


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("arch") / "cdktf.out"
    args = ["synth", *(a for e in CLOUD for a in ("--env", e)), "--environments", str(ENVIRONMENTS),
            "--out", str(target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return target


def _diagram(out: Path, env: str) -> Diagram:
    cfg = load_environment(env, ENVIRONMENTS)
    return build_diagram(load_configs(out, stack_names({env: cfg})))


def _architecture(out: Path, env: str) -> Architecture:
    cfg = load_environment(env, ENVIRONMENTS)
    return build_architecture(env, _diagram(out, env), principals_of(cfg))


@pytest.mark.parametrize("env", CLOUD)
def test_every_synthesized_type_is_classified(out, env) -> None:
    diagram = _diagram(out, env)
    unknown = sorted({type_key(n.address, n.type) for n in diagram.nodes.values()} - set(TYPES))
    assert unknown == [], f"add these Terraform types to stacks/architecture.py TYPES: {unknown}"
    arch = _architecture(out, env)
    assert not [b.title for b in arch.boxes.values() if b.subsystem == "other" or b.unclassified]


def test_prod_architecture_is_a_fraction_of_the_resource_graph(out) -> None:
    diagram = _diagram(out, "prod")
    arch = _architecture(out, "prod")
    assert len(diagram.nodes) >= 90 and len(diagram.edges) >= 150  # what nobody reads
    # issue 13 adds 8 boxes (factory, its identity and Databricks principal, pipelines, the SQL source, ML
    # workspace, its storage, Application Insights) and their grants; +3 boxes (PostgreSQL server, export
    # connector, UC service credential) and +3 arrows (Entra admin, ACCESS, the credential's connector)
    assert len(arch.boxes) <= 43 and len(arch.arrows) <= 63
    assert len(arch.boxes) * 3 <= len(diagram.nodes) and len(arch.arrows) * 4 <= len(diagram.edges)
    assert {b.subsystem for b in arch.boxes.values()} >= {"network", "data", "secrets", "compute", "ml", "serving"}


def test_parts_grants_and_network_links_fold_into_boxes_and_edges(out) -> None:
    arch = _architecture(out, "prod")
    by_title = {b.title: b for b in arch.boxes.values()}
    storage = by_title["Storage account (ADLS Gen2)"]
    assert sorted(storage.parts["container"]) == ["curated", "inference-logs", "models", "raw"]
    assert storage.notes["private endpoint"] == ["blob", "dfs"]  # the endpoints, not two more arrows
    assert "linked to: vnet-mlk-prod-weu" in by_title["Private DNS zones"].label
    assert "4 subnets" in by_title["Virtual network"].label

    def edge(source_title: str, target_title: str) -> str:
        [label] = [a.label for a in arch.arrows if arch.boxes[a.source].title == source_title
                   and arch.boxes[a.target].title == target_title and a.style == "grant"]
        return label.replace("\n", " ")

    # Four role assignments on four containers are one edge naming the roles and the containers.
    connector = edge("Databricks access connector", "Storage account (ADLS Gen2)")
    assert "Storage Blob Data Contributor: curated, models" in re.sub(r"\s+", " ", connector)
    assert "Storage Blob Data Reader: inference-logs, raw" in re.sub(r"\s+", " ", connector)
    # Literal object ids are named from the environment's principals; app id and object id are one box.
    assert "Get, List, Set, Delete" in edge("deployer (service principal)", "Key Vault")
    assert "READ_FILES, WRITE_FILES: curated, models" in re.sub(
        r"\s+", " ", edge("deployer (service principal)", "UC external locations"))
    assert sum(b.title == "deployer (service principal)" for b in arch.boxes.values()) == 1
    # Stacks say where their provider deploys.
    assert "into dbw-mlk-prod-weu (databricks provider)" in arch.stack_titles["prod-workspace"]
    assert "into aks-mlk-prod-weu (kubernetes provider)" in arch.stack_titles["prod-serving"]


def test_unknown_types_are_drawn_under_other_not_dropped() -> None:
    doc = {"resource": {
        "azurerm_storage_account": {"sa": {"name": "stx"}},
        "azurerm_frobnicator": {"f": {"name": "frob-1", "account": "${azurerm_storage_account.sa.id}"}},
        "azurerm_storage_container": {"c": {"name": "raw", "storage_account_id": "${azurerm_storage_account.sa.id}"}},
    }}
    arch = build_architecture("x", build_diagram({"x-platform": doc}))
    [other] = [b for b in arch.boxes.values() if b.subsystem == "other"]
    assert other.unclassified and other.title == "azurerm_frobnicator" and other.members == ["frob-1"]
    assert [(arch.boxes[a.source].title, arch.boxes[a.target].title) for a in arch.arrows] == \
        [("azurerm_frobnicator", "Storage account (ADLS Gen2)")]
    assert "style n" in architecture_mermaid(arch)  # marked in red in the Mermaid text too


_NODE = re.compile(r'^\s*([A-Za-z][\w]*)\["(.*)"\]$')
_EDGE = re.compile(r'^\s*([A-Za-z][\w]*) (-->|==>|-\.->)(?:\|"[^"|]*"\|)? ([A-Za-z][\w]*)$')
_SUBGRAPH = re.compile(r'^\s*subgraph ([A-Za-z][\w]*)\["[^"]*"\]$')


def parse_mermaid(text: str) -> tuple[set[str], set[str], list[tuple[str, str]]]:
    """(node ids, subgraph ids, edges); fails on unbalanced subgraphs or a line it does not know."""
    nodes, subgraphs, edges, depth = set(), set(), [], 0
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    for line in lines[1:]:
        if m := _SUBGRAPH.match(line):
            assert m.group(1) not in subgraphs, f"subgraph id twice: {line}"
            subgraphs.add(m.group(1))
            depth += 1
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0, "end without subgraph"
        elif m := _NODE.match(line):
            assert '"' not in m.group(2), f"unescaped quote: {line}"
            nodes.add(m.group(1))
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(3)))
        else:
            assert line.strip().startswith(("%%", "linkStyle ", "style ")), f"unparsed Mermaid line: {line!r}"
    assert depth == 0, "unbalanced subgraphs"
    return nodes, subgraphs, edges


@pytest.mark.parametrize("env", CLOUD)
def test_mermaid_is_structurally_sound(out, env) -> None:
    arch = _architecture(out, env)
    nodes, subgraphs, edges = parse_mermaid(architecture_mermaid(arch))
    assert len(nodes) == len(arch.boxes) and len(edges) == len(arch.arrows)
    assert not nodes & subgraphs
    undeclared = [(a, b) for a, b in edges if a not in nodes or b not in nodes]
    assert undeclared == []
    assert len(subgraphs) >= 3 + 6  # a cluster per stack and at least the six subsystems


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@needs_dot
def test_picture_renders_png_and_self_contained_svg(out, tmp_path) -> None:
    arch = _architecture(out, "prod")
    render_architecture(arch, tmp_path / "prod.png")
    width, height = _png_size((tmp_path / "prod.png").read_bytes())
    assert 800 < width < 6500 and 600 < height < 5000
    render_architecture(arch, tmp_path / "prod.svg")
    svg = (tmp_path / "prod.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "data:image/png;base64," in svg and not re.search(r'href="/', svg)  # icons embedded, no local paths
    assert "Key Vault" in svg and "Storage Blob Data Reader" in svg  # labels and the permission legend


@needs_dot
def test_graph_command_draws_the_architecture(out, tmp_path) -> None:
    target = tmp_path / "prod.png"
    result = runner.invoke(app, ["graph", "--env", "prod", "--environments", str(ENVIRONMENTS), "--synth-dir",
                                 str(out), "--format", "png", "--out", str(target)])
    assert result.exit_code == 0, result.output
    # prod: 99 before Unity Catalog (-2 workspace models, -1 permissions, +schema, 2 models, 4 grants) and the
    # release gates (+1 per stack); +34 resources with issue 13's Data Factory, Azure ML and Application Insights;
    # +11 with the BI database (server, Entra admin, 2 TLS settings, database, private endpoint, DNS zone + link,
    # export connector; service credential and its grant); +1: the scoring principal's EXECUTE grant on each
    # served model (forecast and classifier); +1 reference: the exporting job waits on the credential's grant
    assert re.search(r"\d+ boxes, \d+ edges \(from 152 resources, 298 references\)", result.output)
    _png_size(target.read_bytes())


def test_graph_command_errors_are_clean(out, monkeypatch) -> None:
    common = ["graph", "--env", "prod", "--environments", str(ENVIRONMENTS), "--synth-dir", str(out)]
    result = runner.invoke(app, [*common, "--level", "services"])
    assert result.exit_code == 2 and "--level 'services'" in result.output and "architecture" in result.output
    monkeypatch.setattr("stacks.architecture_draw.shutil.which", lambda _: None)
    result = runner.invoke(app, [*common, "--format", "svg", "--out", "x.svg"])
    assert result.exit_code == 2 and "`dot` is not on PATH" in result.output and "Traceback" not in result.output
