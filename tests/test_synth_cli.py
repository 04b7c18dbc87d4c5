"""`mlkit synth`, `mlkit graph` and `python main.py` as a user runs them, including bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mlkit.cli import app  # noqa: E402
from stacks.diagram import build_diagram, to_mermaid  # noqa: E402
from envconfig.synth_output import load_configs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def dev_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "cdktf.out"
    result = runner.invoke(app, ["synth", "--env", "dev", "--environments", str(REPO / "environments"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "dev-platform" in result.output and "dev-workspace" in result.output
    return out


def test_synth_writes_only_the_chosen_environment(dev_out) -> None:
    stacks = sorted(p.name for p in (dev_out / "stacks").iterdir())
    assert stacks == ["dev-platform", "dev-serving", "dev-workspace"]


def test_graph_follows_references_across_stacks(dev_out) -> None:
    diagram = build_diagram(load_configs(dev_out, ["dev-platform", "dev-workspace"]))
    edges = {(diagram.nodes[e.source].type, diagram.nodes[e.target].type, e.attribute) for e in diagram.edges}
    assert ("azurerm_databricks_workspace", "provider_databricks", "workspace_url") in edges
    assert ("azurerm_key_vault", "databricks_secret_scope", "vault_uri") in edges
    assert ("databricks_instance_pool", "databricks_job", "id") in edges
    assert ("databricks_workspace_file", "databricks_job", "depends_on") in edges
    assert ("azurerm_kubernetes_cluster", "azurerm_federated_identity_credential", "oidc_issuer_url") in edges
    assert not any(n.type == "terraform_remote_state" for n in diagram.nodes.values())
    mermaid = to_mermaid(diagram)
    assert mermaid.startswith("flowchart LR\n") and 'subgraph s0["dev-platform"]' in mermaid
    assert '["key_vault<br/>kv-mlk-dev-weu"]' in mermaid


def test_graph_command_writes_mermaid_svg_and_png(dev_out, tmp_path) -> None:
    common = ["graph", "--env", "dev", "--environments", str(REPO / "environments"), "--synth-dir", str(dev_out)]
    result = runner.invoke(app, common)
    assert result.exit_code == 0, result.output
    assert "flowchart LR" in result.output
    # Every stack of the environment is drawn, the serving stack included (architecture by default).
    assert all(f'["dev-{kind}' in result.output for kind in ("platform", "workspace", "serving"))
    assert 'subgraph s0_data["Data"]' in result.output
    common += ["--level", "resources"]  # every resource as a box, drawn with matplotlib
    result = runner.invoke(app, common)
    assert result.exit_code == 0, result.output
    assert all(f'["dev-{kind}"]' in result.output for kind in ("platform", "workspace", "serving"))
    for fmt, magic in (("svg", b"<svg"), ("png", b"\x89PNG")):
        target = tmp_path / f"dev.{fmt}"
        result = runner.invoke(app, [*common, "--format", fmt, "--out", str(target)])
        assert result.exit_code == 0, result.output
        assert magic in target.read_bytes()[:400]


def test_graph_synthesizes_when_nothing_is_there(tmp_path) -> None:
    target = tmp_path / "staging.mmd"
    result = runner.invoke(app, ["graph", "--env", "staging", "--environments", str(REPO / "environments"),
                                 "--synth-dir", str(tmp_path / "out"), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert "kv-mlk-staging-weu" in target.read_text()


def test_local_environment_has_no_cloud_stacks(tmp_path) -> None:
    result = runner.invoke(app, ["synth", "--env", "local", "--environments", str(REPO / "environments"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "no cloud stacks for local" in result.output
    result = runner.invoke(app, ["graph", "--env", "local", "--environments", str(REPO / "environments")])
    assert result.exit_code == 2 and "no cloud stacks" in result.output


def _environments_copy(tmp_path: Path) -> Path:
    target = tmp_path / "environments"
    shutil.copytree(REPO / "environments", target)
    return target


def test_input_azure_would_reject_is_a_clean_error(tmp_path) -> None:
    envs = _environments_copy(tmp_path)
    text = (envs / "dev.yaml").read_text()
    assert "  public_network_access: true\n" in text  # dev's registry: Basic and public
    # Private network on, so the config accepts a private registry and the stack's own check speaks.
    (envs / "dev.yaml").write_text(text.replace("  public_network_access: true\n", "  public_network_access: false\n", 1)
                                   + "network:\n  private: true\n")
    result = runner.invoke(app, ["synth", "--env", "dev", "--environments", str(envs), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "container_registry.sku" in result.output and "Premium" in result.output
    assert "Traceback" not in result.output


def test_unknown_environment_is_a_clean_error(tmp_path) -> None:
    result = runner.invoke(app, ["synth", "--env", "qa", "--environments", str(REPO / "environments"),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no environment 'qa'" in result.output


def test_main_py_reports_config_errors_with_file_and_field(tmp_path) -> None:
    envs = _environments_copy(tmp_path)
    text = (envs / "prod.yaml").read_text().replace("max_workers: 8", "max_workers: lots")
    (envs / "prod.yaml").write_text(text)
    env = {**os.environ, "MLKIT_ENVIRONMENTS": str(envs), "MLKIT_SYNTH_OUT": str(tmp_path / "out")}
    proc = subprocess.run([sys.executable, str(REPO / "main.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "prod.yaml" in proc.stderr and "databricks.job_cluster.max_workers" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_synth_of_one_environment_keeps_the_others_in_the_manifest(tmp_path) -> None:
    import json

    out, envs = tmp_path / "cdktf.out", str(REPO / "environments")
    for env in ("dev", "staging"):
        result = runner.invoke(app, ["synth", "--env", env, "--environments", envs, "--out", str(out), "--no-policy"])
        assert result.exit_code == 0, result.output
    stacks = json.loads((out / "manifest.json").read_text())["stacks"]
    assert sorted(stacks) == sorted(f"{e}-{k}" for e in ("dev", "staging") for k in ("platform", "serving", "workspace"))
    assert stacks["dev-serving"]["dependencies"] == ["dev-platform"]
    # A stack whose directory is gone is not resurrected from the old manifest.
    shutil.rmtree(out / "stacks" / "dev-serving")
    result = runner.invoke(app, ["synth", "--env", "staging", "--environments", envs, "--out", str(out), "--no-policy"])
    assert result.exit_code == 0, result.output
    assert "dev-serving" not in json.loads((out / "manifest.json").read_text())["stacks"]
