"""The kit's layers, bottom up: a module imports only from its own layer and the layers below it,
and no modules import each other in a circle. Read from the source with ``ast`` (nothing is
imported), so the test costs milliseconds and sees imports inside functions too.

    workloads (mlkit_workloads: the jobs; imports nothing of the kit)
    < core (envconfig: environment schema, names and tags, diff, user errors)
    < constructs and rules (stacks, policies)
    < operations (mlkit.ops, mlkit.local, mlkit.console)
    < CLI (mlkit.cli, mlkit.commands, main.py)

An upward import not yet removed is listed in KNOWN_UPWARD with the reason; each entry is a strict
xfail, so removing the import without removing the entry fails too and the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"mlkit_workloads": REPO / "workloads" / "mlkit_workloads", "envconfig": REPO / "envconfig",
           "stacks": REPO / "stacks", "policies": REPO / "policies", "mlkit": REPO / "mlkit", "main": REPO / "main.py"}
LAYERS = (
    ("workloads", ("mlkit_workloads",)),
    ("core", ("envconfig",)),
    ("constructs and rules", ("stacks", "policies")),
    ("operations", ("mlkit.ops", "mlkit.local", "mlkit.console")),
    ("CLI", ("mlkit.cli", "mlkit.commands", "mlkit", "main")),
)
KNOWN_UPWARD: dict[tuple[str, str], str] = {}  # none left; add (importer, imported): reason while moving one


def _module_files() -> dict[str, Path]:
    out = {}
    for top, path in SOURCES.items():
        if path.suffix == ".py":
            out[top] = path
            continue
        for f in path.rglob("*.py"):
            parts = (top, *f.relative_to(path).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = _module_files()


def _resolve(name: str) -> str | None:
    """The kit module a dotted import name lands in (its longest known prefix), None outside the kit."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> set[str]:
    """Kit modules ``module`` imports anywhere in its file (TYPE_CHECKING blocks included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names]  # a name may be a submodule; else its module
        else:
            continue
        out |= {m for m in map(_resolve, names) if m and m != module}
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _layer(module: str) -> int:
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
                if module == p or module.startswith(p + ".")), default=None)
    assert best is not None, f"{module} is in no layer: add its package to LAYERS"
    return best[1]


def _upward() -> set[tuple[str, str]]:
    return {(a, b) for a, targets in GRAPH.items() for b in targets if _layer(b) > _layer(a)}


def test_every_module_is_in_a_layer():
    for m in MODULES:
        _layer(m)


def test_no_module_imports_from_a_layer_above_its_own():
    unexpected = sorted(_upward() - set(KNOWN_UPWARD))
    assert not unexpected, "upward imports:\n" + "\n".join(
        f"  {a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})" for a, b in unexpected)


@pytest.mark.parametrize("edge", sorted(KNOWN_UPWARD) or [pytest.param(None, marks=pytest.mark.skip("none listed"))],
                         ids=lambda e: "->".join(e) if e else "none")
def test_known_upward_import_is_gone(edge):
    if edge in _upward():
        pytest.xfail(KNOWN_UPWARD[edge])  # still there: the entry stays, with its reason
    pytest.fail(f"{edge[0]} no longer imports {edge[1]}: remove the entry from KNOWN_UPWARD")


def test_workloads_import_nothing_of_the_kit():
    kit = [(a, b) for a, targets in GRAPH.items() if _layer(a) == 0 for b in targets if _layer(b) > 0]
    assert not kit, kit
    # Their tests neither (they run beside the wheel: workloads/tests/, with their own conftest).
    kit_packages = {top for top in SOURCES if top != "mlkit_workloads"}
    for path in sorted((REPO / "workloads" / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not [n for n in names if n.split(".")[0] in kit_packages], f"{path.name} imports {names}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # The known upward imports are left out: each one closes a cycle that its removal opens again.
    graph = {a: {b for b in targets if (a, b) not in KNOWN_UPWARD} for a, targets in GRAPH.items()}
    cycles = _cycles(graph)
    assert not cycles, "modules importing each other in a circle:\n" + "\n".join(f"  {' <-> '.join(c)}" for c in cycles)


def test_the_checks_find_what_they_look_for():
    # A cycle planted in a copy of the graph is found; the imports read from source are real ones.
    planted = {k: set(v) for k, v in GRAPH.items()}
    planted["envconfig.naming"].add("envconfig.loader")
    assert any({"envconfig.naming", "envconfig.loader"} <= set(c) for c in _cycles(planted))
    assert "envconfig.naming" in GRAPH["envconfig.loader"]  # `from .naming import NamingError`
    assert "mlkit.console" in GRAPH["mlkit.commands.env"]  # `from ..console import ...` (relative)
    assert _layer("stacks.app") > _layer("envconfig.naming") > _layer("mlkit_workloads.settings")


def test_importing_a_construct_loads_no_rule_pack():
    # A fresh interpreter: the construct imports policies.suppressions, which must not pull in the
    # engine (whose import collects every pack's rules) through the package's __init__.
    import json
    import subprocess
    import sys

    probe = ("import json, sys, stacks.platform.storage\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('policies'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "policies.suppressions" in loaded  # the construct did use the suppression API
    assert not [m for m in loaded if m.startswith(("policies.engine", "policies.packs"))], loaded


def test_no_top_level_packages_import_each_other():
    # Module cycles are not the only kind: stacks and policies share a layer, and stacks.x -> policies.y
    # with policies.z -> stacks.w is a package cycle without a module cycle (it was one: the cdktf.out reader).
    top = {a.split(".")[0]: set() for a in GRAPH}
    for a, targets in GRAPH.items():
        top[a.split(".")[0]] |= {b.split(".")[0] for b in targets if (a, b) not in KNOWN_UPWARD} - {a.split(".")[0]}
    cycles = _cycles(top)
    assert not cycles, "packages importing each other:\n" + "\n".join(f"  {' <-> '.join(c)}" for c in cycles)
