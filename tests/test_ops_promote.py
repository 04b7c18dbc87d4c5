"""mlkit promote between two real MLflow servers (sqlite, 127.0.0.1) standing for two environments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port
from ops_helpers import ENVIRONMENTS

from envconfig.loader import load_environment
from mlkit.ops.promote import PROMOTED_FROM, PromotionRefused, env_diff, promote
from mlkit.ops.release import ReleaseRecord, lock_path, read_lock, record_release, release_experiment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two tracking servers started together (each takes a while to import MLflow)."""
    root = tmp_path_factory.mktemp("mlflow")
    procs, uris = [], []
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    for name in ("a", "b"):
        port = free_port()
        log = open(root / f"{name}.log", "w")
        procs.append(subprocess.Popen(
            [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{root / name}.db", "--artifacts-destination", str(root / f"{name}-art"),
             "--gunicorn-opts", ""], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_TRACKING_URI": ""}))
        uris.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.time() + 180
        for uri, proc in zip(uris, procs):
            while True:
                try:
                    urllib.request.urlopen(f"{uri}/health", timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        pytest.fail(f"mlflow server {uri} did not start: {(root / 'a.log').read_text()[-2000:]}")
                    time.sleep(0.3)
        # The first API call creates the database tables: do it for both servers at once.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda u: urllib.request.urlopen(
                f"{u}/api/2.0/mlflow/experiments/search?max_results=1", timeout=300).read(), uris))
        yield uris
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def env_files(tmp_path: Path, a: str, b: str) -> Path:
    """Two environments named for this test, so tests sharing the servers don't share experiments."""
    d = tmp_path / "envs"
    d.mkdir()
    # The environment names its models (workloads.*.registered_model): <env>fc and <env>cl here.
    # Both in catalog c, schema s (one metastore), so a model keeps its full name c.s.<name> in B.
    base = (ENVIRONMENTS / "ci.yaml").read_text().split("workloads:")[0] + (
        f"workloads: {{forecast: {{registered_model: {a}fc}}, classifier: {{registered_model: {a}cl}}, "
        "tracking: {registry: {catalog: c, schema: s}}}\n")
    (d / f"{a}.yaml").write_text(base.replace("environment: ci", f"environment: {a}"))
    (d / f"{b}.yaml").write_text(base.replace("environment: ci", f"environment: {b}") + "prod_like: true\n"
                                 "aks: {vm_size: Standard_D8ds_v5, min_count: 2, max_count: 6}\n"
                                 "key_vault: {network_default_action: Allow}\n")
    return d


def client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def train(c, env: str, model: str, passed: bool, weights: str, tmp_path: Path) -> str:
    """What the workloads' train + promote tasks leave behind: a version, its gate tag, champion alias."""
    exp = c.get_experiment_by_name(f"/train/{env}") or c.get_experiment(c.create_experiment(f"/train/{env}"))
    run = c.create_run(exp.experiment_id)
    rid = run.info.run_id
    c.log_param(rid, "data_table", "sales")
    c.log_param(rid, "data_table_version", "7")
    c.log_metric(rid, "median_wape", 0.12)
    c.set_tag(rid, "promotion.reasons", "median WAPE 0.120 (max 0.300)" if passed else "median WAPE 0.900 (max 0.300)")
    src = tmp_path / f"model-{model}-{weights}"
    src.mkdir()
    (src / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    (src / "weights.json").write_text(json.dumps({"w": weights}))
    c.log_artifacts(rid, str(src), "model")
    c.set_terminated(rid, "FINISHED")
    try:
        c.create_registered_model(model)
    except Exception:
        pass
    mv = c.create_model_version(model, f"runs:/{rid}/model", run_id=rid)
    c.set_model_version_tag(model, mv.version, "promotion", "passed" if passed else "failed")
    if passed:
        c.set_registered_model_alias(model, "champion", mv.version)
    return str(mv.version)


def release(c, cfg, sha: str) -> str:
    return record_release(c, release_experiment(cfg), ReleaseRecord(
        cfg.name, sha, "w.whl", sha[:1] * 64, ["x"], scoring_image=f"cr.azurecr.io/mlkit-scoring:1@sha256:{sha[:1] * 64}"))


def run_promote(envs, a, b, uris, **kw):
    ca, cb = load_environment(a, envs), load_environment(b, envs)
    return promote(ca, cb, environments=envs, src=client(uris[0]), dst=client(uris[1]), src_uri=uris[0], **kw)


def test_env_diff_flags_only_unexpected_differences(tmp_path):
    envs = env_files(tmp_path, "pa", "pb")
    rows, unexpected = env_diff(load_environment("pa", envs), load_environment("pb", envs))
    fields = {f for f, _, _ in rows}
    assert {"aks.vm_size", "aks.min_count", "name", "tags.environment", "prod_like"} <= fields
    assert unexpected == ["key_vault.network_default_action"]


def test_approved_release_is_locked_copied_and_championed_then_idempotent(servers, tmp_path):
    import mlflow

    envs = env_files(tmp_path, "appa", "appb")
    src = client(servers[0])
    ver = train(src, "appa", "c.s.appafc", True, "v1-weights", tmp_path)
    train(src, "appa", "c.s.appacl", True, "cl", tmp_path)
    rid = release(src, load_environment("appa", envs), "a" * 40)
    res = run_promote(envs, "appa", "appb", servers)
    lock = read_lock(lock_path(envs, "appb"))
    assert res.lock_written and lock.source_release_id == rid and lock.git_sha == "a" * 40
    pin = lock.models[1]
    assert [m.name for m in lock.models] == ["c.s.appacl", "c.s.appafc"]
    # What the target's stacks check at plan time: each model's full name there, the source release's image.
    assert [m.target for m in lock.models] == ["c.s.appacl", "c.s.appafc"]
    assert lock.scoring_image_digest == "sha256:" + "a" * 64
    assert (pin.name, pin.version, pin.gate_decision, pin.data_table_version) == ("c.s.appafc", ver, "passed", "7")
    assert pin.metrics == {"median_wape": 0.12}
    dst = client(servers[1])
    champ = dst.get_model_version_by_alias("c.s.appafc", "champion")
    assert champ.tags[PROMOTED_FROM] == f"appa/c.s.appafc/{ver}"
    # The artifacts really moved: read them back from B's registry.
    where = dst.get_model_version_download_uri("c.s.appafc", champ.version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=where, dst_path=str(tmp_path / "dl"),
                                                tracking_uri=servers[1])
    assert json.loads((Path(local) / "weights.json").read_text()) == {"w": "v1-weights"}
    before = lock_path(envs, "appb").read_bytes()
    again = run_promote(envs, "appa", "appb", servers)
    assert not again.lock_written and lock_path(envs, "appb").read_bytes() == before
    assert all(c["reused"] for c in again.copies) and len(dst.search_model_versions("name='c.s.appafc'")) == 1


def test_failed_gate_is_refused_with_its_reasons(servers, tmp_path):
    envs = env_files(tmp_path, "gata", "gatb")
    src = client(servers[0])
    train(src, "gata", "c.s.gatacl", True, "ok", tmp_path)
    ver = train(src, "gata", "c.s.gatafc", False, "bad", tmp_path)
    src.set_registered_model_alias("c.s.gatafc", "champion", ver)  # moved by hand despite the failed gate
    release(src, load_environment("gata", envs), "b" * 40)
    with pytest.raises(PromotionRefused, match=r"gata c.s.gatafc v1: gate decision is 'failed', not 'passed': "
                                               r"median WAPE 0.900"):
        run_promote(envs, "gata", "gatb", servers)
    assert not lock_path(envs, "gatb").exists()
    assert client(servers[1]).search_model_versions("name='c.s.gatacl'") == []


def test_unknown_release_is_refused(servers, tmp_path):
    envs = env_files(tmp_path, "unka", "unkb")
    train(client(servers[0]), "unka", "c.s.unkafc", True, "w", tmp_path)
    with pytest.raises(PromotionRefused, match="unka's release is unknown: no release record in /Shared/mlk/unka/"):
        run_promote(envs, "unka", "unkb", servers)


def test_stale_lock_is_refused_until_updated(servers, tmp_path):
    envs = env_files(tmp_path, "stla", "stlb")
    src = client(servers[0])
    cfg = load_environment("stla", envs)
    train(src, "stla", "c.s.stlafc", True, "one", tmp_path)
    train(src, "stla", "c.s.stlacl", True, "cl", tmp_path)
    release(src, cfg, "c" * 40)
    run_promote(envs, "stla", "stlb", servers)
    # stla moves on (new deploy, new champion) after stlb's lock was reviewed.
    v2 = train(src, "stla", "c.s.stlafc", True, "two", tmp_path)
    release(src, cfg, "d" * 40)
    stale = (r"stlb.lock.json is stale: it pins stla release .* \(git cccccccccccc, c.s.stlacl v1, c.s.stlafc v1\), "
             r"stla's current release is .* \(git dddddddddddd, c.s.stlacl v1, c.s.stlafc v2\)")
    with pytest.raises(PromotionRefused, match=stale):
        run_promote(envs, "stla", "stlb", servers)
    assert client(servers[1]).get_model_version_by_alias("c.s.stlafc", "champion").tags[PROMOTED_FROM] == "stla/c.s.stlafc/1"
    res = run_promote(envs, "stla", "stlb", servers, update_lock=True)
    assert res.lock_written and read_lock(lock_path(envs, "stlb")).git_sha == "d" * 40
    dst = client(servers[1])
    assert dst.get_model_version_by_alias("c.s.stlafc", "champion").tags[PROMOTED_FROM] == f"stla/c.s.stlafc/{v2}"
    assert dst.get_model_version_by_alias("c.s.stlafc", "previous_champion").version == "1"


def test_promote_bad_or_unreachable_registry_is_a_message(tmp_path) -> None:
    from typer.testing import CliRunner

    from mlkit.cli import app

    envs = str(Path(__file__).resolve().parent.parent / "environments")
    runner = CliRunner()
    bad = runner.invoke(app, ["promote", "--from", "staging", "--to", "prod", "--environments", envs,
                              "--from-uri", "x", "--to-uri", "y"])
    assert bad.exit_code == 1 and "--from-uri 'x'" in bad.stderr and "Traceback" not in bad.output + bad.stderr
    down = runner.invoke(app, ["promote", "--from", "staging", "--to", "prod", "--environments", envs,
                               "--from-uri", "http://127.0.0.1:9", "--to-uri", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "did not answer" in down.stderr and "Traceback" not in down.stderr
