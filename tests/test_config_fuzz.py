"""Property-based fuzzing of the environment files: mutations of the shipped files (types, ranges,
unknown and missing keys, YAML oddities) load or fail with a ConfigError naming file and field;
never another exception, never a traceback.

Each example writes the mutated file into a fresh copy of environments/ and loads the environment
that reads it (an edit of base.yaml is loaded through every environment that extends it).
"""

from __future__ import annotations

import re
import shutil
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envconfig.errors import ConfigError
from envconfig.loader import load_environment

ENVS = Path(__file__).resolve().parents[1] / "environments"
FILES = {p.stem: p.read_text() for p in sorted(ENVS.glob("*.yaml"))}
# Every ${VAR} the shipped files use, set the way CI sets them, so validation reaches the fields.
VARS = {v: "00000000-0000-4000-8000-00000000000" + str(i % 10)
        for i, v in enumerate(sorted(set(re.findall(r"\$\{([A-Z0-9_]+)", "".join(FILES.values())))))}
LOADS = {stem: [s for s in FILES if s != "base" and (s == stem or stem == "base")] for stem in FILES}
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _paths(node, prefix=()):
    """Every (path, value) in a parsed YAML tree."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "yes", "no", "on", "0x1F", "1e400", "-0", "~", "null", "${UNSET_VAR}", "${}", "$${X}",
                     "2024-01-01", "12:30", "a" * 300, "ünïcode", "0 0 * * * ?", "Europe/Nowhere", "10.0.0.0/33"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(string.ascii_lowercase + "_", min_size=1,
                                                                               max_size=12), inner, max_size=3)),
                      max_leaves=6)


@st.composite
def structural(draw):
    """Parse a shipped file, change one place (replace a value, delete or add a key, retype a list), dump it."""
    stem = draw(st.sampled_from(sorted(FILES)))
    tree = yaml.safe_load(FILES[stem])
    paths = [p for p, _ in _paths(tree) if p]
    path = draw(st.sampled_from(paths))
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    op = draw(st.sampled_from(["replace", "delete", "add_unknown", "typo"]))
    last = path[-1]
    if op == "replace":
        parent[last] = draw(values)
    elif op == "delete":
        del parent[last]
    elif op == "add_unknown" and isinstance(parent, dict):
        parent[draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)) + "_x"] = draw(values)
    elif op == "typo" and isinstance(parent, dict) and isinstance(last, str) and len(last) > 1:
        parent[last[:-1] + last[-1].swapcase() + "x"] = parent.pop(last)
    return stem, yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


ODDITIES = ["\tkey: value", "foo: &a [1, 2]\nbar: *a", "x: !!python/object/apply:os.system ['true']",
            "---\nsecond: document", "? [complex, key]\n: value", "{unbalanced: [", "a: b: c", "- a list item",
            "kind: local\nkind: cloud", "<<: {merged: 1}", "\ufeffbom: 1", "key: 'unterminated", "%YAML 1.1",
            "name: " + "n" * 5000, "!!binary aGVsbG8=", "local:\n  state_dir: [", "description: |\n bad\n indent"]


@st.composite
def textual(draw):
    """Insert a YAML oddity at a random line of a shipped file, or cut/garble its bytes."""
    stem = draw(st.sampled_from(sorted(FILES)))
    lines = FILES[stem].splitlines()
    op = draw(st.sampled_from(["insert", "truncate", "bytes"]))
    if op == "insert":
        at = draw(st.integers(0, len(lines)))
        indent = draw(st.sampled_from(["", "  ", "    ", "\t"]))
        lines.insert(at, indent + draw(st.sampled_from(ODDITIES)))
        return stem, "\n".join(lines).encode()
    data = FILES[stem].encode()
    if op == "truncate":
        return stem, data[: draw(st.integers(0, len(data)))]
    at = draw(st.integers(0, len(data)))
    # Text, not raw bytes: the not-UTF-8 case has its own test below.
    return stem, data[:at] + draw(st.text(min_size=1, max_size=8)).encode() + data[at:]


TOP_FIELDS = sorted({k for text in FILES.values() for k in (yaml.safe_load(text) or {})} |
                    {"subscription_id", "tenant_id", "backend", "principals"})


def _names_a_field(message: str) -> bool:
    """A check that spans several fields may name them only in its message (e.g. "a cloud environment
    needs subscription_id, tenant_id" is reported at the first); accept a field named there too."""
    return any(re.search(rf"\b{re.escape(f)}\b", message) for f in TOP_FIELDS)


def _check(stem: str, content: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "environments"
        shutil.copytree(ENVS, d)
        target = d / f"{stem}.yaml"
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        for name in LOADS[stem]:
            try:
                load_environment(name, d, env=VARS)
            except ConfigError as e:
                assert e.problems, "a ConfigError with no problem in it"
                for p in e.problems:
                    assert Path(p.file).parent == d and Path(p.file).suffix == ".yaml", str(p)
                    assert p.field or p.line or p.message.startswith(("not valid YAML", "cannot read",
                                                                      "the top level")) \
                        or _names_a_field(p.message), str(p)
                    assert p.message.strip(), str(p)
            # Anything else (TypeError, KeyError, RecursionError, UnicodeDecodeError, ...) fails the test.


def test_the_shipped_files_load():
    for stem in FILES:
        for name in LOADS[stem]:
            load_environment(name, ENVS, env=VARS)


@FUZZ
@given(structural())
def test_structural_mutations_fail_with_file_and_field(case):
    _check(*case)


@FUZZ
@given(textual())
def test_yaml_oddities_fail_with_file_and_field(case):
    _check(*case)


def test_a_file_that_is_not_utf8_is_a_config_error():
    _check("local", b"\x80" + FILES["local"].encode())


def test_a_missing_cloud_field_is_reported_under_its_field():
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "environments"
        shutil.copytree(ENVS, d)
        base = d / "base.yaml"
        base.write_text("\n".join(line for line in FILES["base"].splitlines()
                                  if not line.startswith("subscription_id")))
        with pytest.raises(ConfigError) as e:
            load_environment("dev", d, env=VARS)
        assert [p.field for p in e.value.problems] == ["subscription_id"]
