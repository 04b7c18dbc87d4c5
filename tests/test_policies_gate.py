"""`mlkit synth` refuses an environment with unsuppressed policy errors unless --no-policy, and says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ops_helpers import environments_with_idling_pools
from typer.testing import CliRunner

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from mlkit.cli import app  # noqa: E402

pytestmark = pytest.mark.slow


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def envs(tmp_path_factory) -> Path:
    """dev as it is, and a staging whose cluster policy lets pools idle forever (MLK-DB-001 fails)."""
    return environments_with_idling_pools(tmp_path_factory.mktemp("gate") / "environments")


def test_synth_refuses_the_failing_environment_and_keeps_the_others(envs, tmp_path):
    out = tmp_path / "cdktf.out"
    res = invoke("synth", "--env", "dev", "--env", "staging", "--environments", str(envs), "--out", str(out))
    assert res.exit_code == 1, res.output
    assert "refusing to synthesize staging: 1 unsuppressed policy error(s)" in res.output
    assert "MLK-DB-001 databricks_instance_pool.pool-default_pool_" in res.output
    assert "--no-policy" in res.output and "Traceback" not in res.output
    written = json.loads((out / "manifest.json").read_text())["stacks"]
    assert sorted(written) == ["dev-platform", "dev-serving", "dev-workspace"]
    assert not (out / "stacks" / "staging-platform").exists()
    assert (out / "stacks" / "dev-platform" / "cdk.tf.json").is_file()


def test_synth_no_policy_writes_it_and_says_so(envs, tmp_path):
    out = tmp_path / "cdktf.out"
    res = invoke("synth", "--env", "staging", "--environments", str(envs), "--out", str(out), "--no-policy")
    assert res.exit_code == 0, res.output
    assert "policy gate skipped (--no-policy)" in res.output
    assert (out / "stacks" / "staging-workspace" / "cdk.tf.json").is_file()
