"""`mlkit run` edges that need no Spark: refusals and the unreachable tracking server."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import free_port, use_tracking_uri
from typer.testing import CliRunner

from mlkit.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_unreachable_tracking_server_is_a_clear_error():

    from mlkit_workloads.errors import TrackingUnreachable
    from mlkit_workloads.tracking import check_reachable

    uri = f"http://127.0.0.1:{free_port()}"  # closed again: nothing listens there
    with use_tracking_uri(uri), pytest.raises(TrackingUnreachable, match=f"tracking server at {uri} is not reachable"):
        check_reachable()


@pytest.mark.parametrize("args, message", [
    (["--env", "dev"], "dev is a cloud environment"),
    (["--job", "nightly"], "no job 'nightly'"),
    (["--data", "nope.csv"], "--data nope.csv: no such file"),
    (["--job", "classifier", "--data", "pyproject.toml"], "--data feeds the forecast job"),
])
def test_run_refuses_bad_requests_before_starting_anything(args, message):
    result = CliRunner().invoke(app, ["run", "--environments", str(ROOT / "environments"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_entry_point_reports_bad_settings_without_traceback(tmp_path, capsys):
    from mlkit_workloads.entrypoint import main

    bad = tmp_path / "settings.json"
    bad.write_text('{"forecast": {"season_lenght": 7}}')
    assert main("mlkit-train-many", ["--env", "dev", "--settings", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "is not valid workload settings" in err and "season_lenght" in err and "Traceback" not in err
    assert main("mlkit-ingest", ["--env", "dev", "--settings", str(tmp_path / "nope.json"), "--dataset", "forecast",
                                  "--raw-path", ""]) == 1
    assert "cannot read settings file" in capsys.readouterr().err


def test_each_data_source_gets_its_own_tables(tmp_path) -> None:
    """--data must not append a user's file to the synthetic (or another file's) training table."""
    from mlkit_workloads.settings import WorkloadSettings

    from mlkit.local.runner import settings_for_run

    default = settings_for_run(WorkloadSettings(), tmp_path)
    a = settings_for_run(WorkloadSettings(), tmp_path, tmp_path / "sales.csv")
    b = settings_for_run(WorkloadSettings(), tmp_path, tmp_path / "other" / "sales.csv")
    assert default.tables.root == str((tmp_path / "tables").resolve())
    assert len({default.tables.root, a.tables.root, b.tables.root}) == 3
    assert a.tables.root.startswith(default.tables.root + "/data-sales-")
    assert a.forecast.source.path == str(tmp_path / "sales.csv") and a.forecast.source.format == "csv"
    assert settings_for_run(WorkloadSettings(), tmp_path, tmp_path / "sales.csv").tables.root == a.tables.root


def test_a_stale_pid_file_does_not_make_a_foreign_server_ours(tmp_path) -> None:
    import os

    from mlkit.local.mlflow_server import _our_server_pid

    pid_file = tmp_path / "mlflow-server.pid"
    assert _our_server_pid(pid_file, tmp_path) is None  # no file
    pid_file.write_text(str(os.getpid()))  # alive, but this test process is not an MLflow server of tmp_path
    assert _our_server_pid(pid_file, tmp_path) is None
    pid_file.write_text("not a pid")
    assert _our_server_pid(pid_file, tmp_path) is None


def test_mlkit_stop_ends_every_server_the_state_dir_started(tmp_path) -> None:
    """`mlkit stop` finds the servers by the process table (a lost pid file does not hide one); the
    server runs without MLflow's job runner."""
    import shutil

    import psutil
    import yaml

    from mlkit.local import mlflow_server

    envs = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", envs)
    local = yaml.safe_load((envs / "local.yaml").read_text())
    port = free_port()
    local["local"].update(state_dir=str(tmp_path / "state"), mlflow_port=port)
    (envs / "local.yaml").write_text(yaml.safe_dump(local))
    server = mlflow_server.ensure(tmp_path / "state", port)
    try:
        assert psutil.Process(server.pid).environ()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
        assert [s.pid for s in mlflow_server.started_here(tmp_path / "state")] == [server.pid]
        (tmp_path / "state" / "mlflow-server.pid").unlink()  # lost: the process table still knows it
        result = CliRunner().invoke(app, ["stop", "--environments", str(envs)])
        assert result.exit_code == 0, result.output
        assert f"stopped the MLflow server http://127.0.0.1:{port} (pid {server.pid})" in " ".join(result.output.split())
        assert mlflow_server.started_here(tmp_path / "state") == []
        # ended (this test's process started it, so until reaped it may linger as a zombie)
        assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE
        again = CliRunner().invoke(app, ["stop", "--environments", str(envs)])
        assert again.exit_code == 0 and "no server started from" in again.output
        cloud = CliRunner().invoke(app, ["stop", "--env", "dev", "--environments", str(envs)])
        assert cloud.exit_code == 2 and "dev is a cloud environment" in cloud.output
    finally:
        mlflow_server.stop(server)


def test_training_tags_skip_an_identical_retraining_unless_forced(mlflow_server) -> None:
    from mlflow import MlflowClient
    from mlkit_workloads.context import LocalTaskContext
    from mlkit_workloads.runtime import Runtime
    from mlkit_workloads.settings import WorkloadSettings
    from mlkit_workloads.tracking import record_training, reuse_training, trained_version, training_tags

    cfg = WorkloadSettings().forecast
    tags = training_tags(cfg, "/data/forecast_sales", 3)
    assert tags == training_tags(cfg, "/data/forecast_sales", 3)
    other_gates = cfg.model_copy(update={"gates": cfg.gates.model_copy(update={"max_median_wape": 0.9})})
    assert training_tags(other_gates, "/data/forecast_sales", 3) == tags  # gates decide after training
    more_trials = cfg.model_copy(update={"search": cfg.search.model_copy(update={"n_trials": 99})})
    assert len({tags["mlkit_training_key"], training_tags(more_trials, "/data/forecast_sales", 3)["mlkit_training_key"],
                training_tags(cfg, "/data/forecast_sales", 4)["mlkit_training_key"],
                training_tags(cfg, "/other/forecast_sales", 3)["mlkit_training_key"]}) == 4

    model = "tags_rerun_test"
    client = MlflowClient()
    assert trained_version(model, tags) is None  # no such model yet: train
    client.create_registered_model(model)
    run = client.create_run(client.create_experiment("/Shared/mlkit-test-tags"))
    source = f"{run.info.artifact_uri}/model"
    v1 = client.create_model_version(model, source, run_id=run.info.run_id)
    client.create_model_version(model, source, run_id=run.info.run_id)  # untagged: never reused
    record_training(model, v1.version, run.info.run_id, tags)
    assert trained_version(model, tags).version == v1.version
    assert client.get_run(run.info.run_id).data.tags["mlkit_training_key"] == tags["mlkit_training_key"]

    said: list[str] = []
    rt = Runtime("test", WorkloadSettings(), None, None, LocalTaskContext("train_many"), say=said.append)
    out = reuse_training(rt, model, tags)
    assert out["outcome"] == "skipped" and out["model_version"] == v1.version and out["run_id"] == run.info.run_id
    assert rt.context.get("train_many", "model_version") == v1.version  # promote reads it as after a training
    assert said and "pass --force to train again" in said[0] and "/data/forecast_sales v3" in said[0]
    rt.force = True
    assert reuse_training(rt, model, tags) is None


def test_the_monitor_job_reads_the_log_where_serve_writes_it_even_after_data(tmp_path) -> None:
    """`--job all --data x.csv`: the forecast tables move to their own folder, the monitor job still
    reads the inference log under the environment's tables root; no traffic is its own outcome."""
    from mlkit_workloads.settings import WorkloadSettings

    from mlkit.local.runner import run_jobs, settings_for_run, tables_root

    settings = settings_for_run(WorkloadSettings(), tmp_path, tmp_path / "sales.csv")
    base = tables_root(WorkloadSettings(), tmp_path)
    assert settings.tables.root != str(base)
    report = run_jobs(settings, ["monitor"], None, "test", tmp_path, monitor_root=str(base))
    (task,) = report.tasks
    assert task.status == "nothing to compare" and report.ok
    assert task.result["inference_source"] == str(base / "inference_log")
