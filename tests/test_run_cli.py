"""`mlkit run` edges that need no Spark: refusals and the unreachable tracking server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlkit.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_unreachable_tracking_server_is_a_clear_error():
    import mlflow

    from mlkit_workloads.errors import TrackingUnreachable
    from mlkit_workloads.tracking import check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with pytest.raises(TrackingUnreachable, match=f"tracking server at {uri} is not reachable"):
            check_reachable()
    finally:
        mlflow.set_tracking_uri(old)


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
    assert main("mlkit-ingest", ["--env", "dev", "--settings", str(tmp_path / "nope.json"), "--dataset", "forecast"]) == 1
    assert "cannot read settings file" in capsys.readouterr().err


def test_each_data_source_gets_its_own_tables(tmp_path) -> None:
    """--data must not append a user's file to the synthetic (or another file's) training table."""
    from mlkit.local.runner import settings_for_run
    from mlkit_workloads.settings import WorkloadSettings

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
