"""The Databricks runtime the jobs run on is named once (mlkit_workloads/target_runtime.py); its
constraints file, the environments, the second test leg's venv and the test selection agree with it.

Runs in both legs: in .venv-spark35 it checks the interpreter it runs in, in the first leg the
.venv-spark35 that scripts/setup.sh built.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import KIT_SPARK_MODULES, ON_TARGET_RUNTIME, SPARK_LEG_MODULES
from mlkit_workloads.target_runtime import DATABRICKS_RUNTIME as RT

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
OVERRIDE = re.compile(r"^#override ([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+(\S.*)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> tuple[dict[str, str], dict[str, tuple[str, str]], str]:
    """(pins, overrides name -> (runtime version, reason), the file's text)."""
    text = (REPO / RT.constraints).read_text()
    pins, overrides = {}, {}
    for line in text.splitlines():
        if m := PIN.match(line.strip()):
            assert norm(m[1]) not in pins, f"{RT.constraints}: {m[1]} pinned twice"
            pins[norm(m[1])] = m[2]
        elif m := OVERRIDE.match(line.strip()):
            overrides[norm(m[1])] = (m[2], m[3])
        elif line.strip().startswith("#override"):
            pytest.fail(f"{RT.constraints}: {line!r} is not '#override name==version  reason'")
    return pins, overrides, text


def test_constraints_file_is_the_target_runtimes():
    pins, overrides, text = constraints()
    release = RT.spark_version.split(".x-")[0]  # "15.4"
    assert f"dbr-{release}-" in RT.constraints
    assert f"spark_version {RT.spark_version}" in text
    assert f"Apache Spark {RT.spark}" in text and f"Python {RT.python}" in text
    assert f"/release-notes/runtime/{release}lts" in text, "the source (release notes URL) is named"
    assert pins["pyspark"] == RT.spark
    # What the runtime's own PySpark is built against is never overridden.
    for name in ("pyspark", "pandas", "numpy", "pyarrow"):
        assert name in pins and name not in overrides
    both = set(pins) & set(overrides)
    assert not both, f"{RT.constraints}: pinned and overridden at once: {sorted(both)}"


def test_runtime_python_is_the_projects():
    pyproject = (REPO / "workloads/pyproject.toml").read_text()
    assert f'requires-python = ">={RT.python},' in pyproject
    assert f"sys.version_info[:2] == ({RT.python.replace('.', ', ')})" in (REPO / "scripts/setup.sh").read_text()


def test_every_environment_runs_the_target_runtime():
    from envconfig.loader import load_all

    clouds = {n: c for n, c in load_all(REPO / "environments", env={}).items() if c.kind == "cloud"}
    assert clouds and {c.databricks.spark_version for c in clouds.values()} == {RT.spark_version}


def test_an_environment_on_another_runtime_is_refused(tmp_path):
    from envconfig.errors import ConfigError
    from envconfig.loader import load_environment

    envs = tmp_path / "environments"
    shutil.copytree(REPO / "environments", envs)
    text = (envs / "staging.yaml").read_text().replace("databricks:\n", "databricks:\n  spark_version: 16.4.x-scala2.12\n", 1)
    (envs / "staging.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_environment("staging", envs, env={})
    (p,) = e.value.problems
    assert p.field == "databricks.spark_version" and p.file.endswith("staging.yaml")
    assert RT.spark_version in p.message and "target_runtime.py" in p.message


def _uses_spark(path: Path) -> bool:
    """A module whose tests take the `spark` fixture or carry the `spark` mark."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(a.arg == "spark" for a in node.args.args):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "spark" and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "mark":
            return True
    return False


def test_every_spark_test_module_runs_in_the_second_leg():
    spark_modules = {p.name for p in TESTS.glob("test_*.py") if _uses_spark(p)}
    assert spark_modules, "no Spark tests found"
    missing = spark_modules - set(SPARK_LEG_MODULES) - set(KIT_SPARK_MODULES)
    assert not missing, f"add to SPARK_LEG_MODULES in tests/conftest.py: {sorted(missing)}"
    assert all((TESTS / m).exists() for m in SPARK_LEG_MODULES)


def _leg_distributions() -> dict[str, str]:
    """Every distribution installed in the second leg's venv (this one, in that leg)."""
    python = sys.executable if ON_TARGET_RUNTIME else str(REPO / ".venv-spark35/bin/python")
    if not Path(python).exists():
        pytest.fail(f"{python} is missing: scripts/setup.sh builds it")
    code = "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return {norm(k): v for k, v in json.loads(out).items()}


def test_second_leg_has_the_runtimes_spark_and_libraries():
    pins, overrides, _ = constraints()
    installed = _leg_distributions()
    assert installed["pyspark"] == RT.spark and "mlkit-workloads" in installed
    # Every runtime library in the leg is the runtime's version, or its override is written down...
    differ = {n: (pins[n], v) for n, v in installed.items() if n in pins and v != pins[n]}
    assert not differ, f"not the runtime's version (runtime, installed): {differ}"
    # ...and each override is real: the leg has another version than the runtime (else drop the line).
    stale = {n: v for n, (v, _) in overrides.items() if installed.get(n) == v}
    assert not stale, f"{RT.constraints}: overrides nobody needs any more: {stale}"
    # The leg's MLflow is the client the cluster gets (the wheel's), not the kit's full server.
    assert "mlflow" not in installed and "mlflow-skinny" in installed
