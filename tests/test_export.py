"""The export task's writes on a real PostgreSQL (the machine's own, started by mlkit.local.postgres).

Idempotency (a re-run of a version replaces its rows), the view of the latest champion, both
drivers (psycopg and Spark JDBC with Debian's jar), and the failures: bad credentials, an
unreachable server, a table of another shape, a failure in the middle of the transaction; each
names host and database and leaves the table as it was. Every server started here is stopped.
"""

from __future__ import annotations

import dataclasses
import socket
import time

import pandas as pd
import pytest
from mlkit_workloads.errors import DataError
from mlkit_workloads.export import batch, psycopg_writer, sql
from mlkit_workloads.export.connection import Connection, ExportFailed, connection
from mlkit_workloads.export.settings import ExportSettings

from mlkit.local import postgres

pytestmark = pytest.mark.skipif(not postgres.BIN_ROOT.exists(), reason="needs the Debian postgresql package")

KEYS = ("store", "item")


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    state = tmp_path_factory.mktemp("pg") / "state"
    server = postgres.ensure(state)
    yield server, state
    postgres.stop(state)
    assert not postgres._running(server.data_dir), "the test's PostgreSQL still runs"


def conn_of(server, **change) -> Connection:
    cfg = ExportSettings(enabled=True, host=server.host, port=server.port, database=server.database,
                         user=server.user, password_file=str(server.password_file), sslmode="disable")
    return connection(cfg.model_copy(update=change))


def spec_for(table: str) -> sql.TableSpec:
    return sql.TableSpec("predictions", table, f"{table}_latest", KEYS, "date", ("lo_80", "hi_80"))


def predictions(version: int, groups=(("S1", "I1"), ("S1", "I2"), ("S2", "I1")), days: int = 5,
                start: str = "2025-01-01", shift: float = 0.0) -> pd.DataFrame:
    rows = []
    for store, item in groups:
        for step, date in enumerate(pd.date_range(start, periods=days, freq="D", tz="UTC"), start=1):
            p = 10.0 * step + version + shift
            rows.append({"store": store, "item": item, "step": step, "date": date, "prediction": p,
                         "lo_80": p - 2, "hi_80": p + 2, "model_type": "auto_ets", "model_name": "m.s.forecast",
                         "model_version": str(version), "data_table_version": 3,
                         "trained_through": pd.Timestamp("2024-12-31", tz="UTC"),
                         "scored_at": pd.Timestamp.now(tz="UTC")})
    return pd.DataFrame(rows)


def rows(conn: Connection, spec: sql.TableSpec, where: str = "") -> list[tuple]:
    return psycopg_writer.query(conn, f"SELECT store, item, date, model_version, prediction, run_id FROM {spec.target} "
                                      f"{where} ORDER BY 1, 2, 3, 4")


def test_a_rerun_of_a_version_replaces_its_rows_and_never_duplicates(pg):
    server, _ = pg
    conn, spec = conn_of(server), spec_for("rerun")
    first = psycopg_writer.write(conn, spec, sql.export_frame(predictions(1), spec, "run-a"))
    assert (first.rows, first.inserted, first.updated, first.deleted, first.created) == (15, 15, 0, 0, True)
    again = psycopg_writer.write(conn, spec, sql.export_frame(predictions(1, shift=0.5), spec, "run-b"))
    assert (again.inserted, again.updated, again.deleted, again.created) == (0, 15, 0, False)
    got = rows(conn, spec)
    assert len(got) == 15 and {r[5] for r in got} == {"run-b"}  # replaced, not appended
    assert got[0][4] == pytest.approx(11.5)
    # Another version is its own rows; a re-run of v1 without group S2/I1 drops that group's v1 rows only.
    psycopg_writer.write(conn, spec, sql.export_frame(predictions(2), spec, "run-c"))
    dropped = psycopg_writer.write(conn, spec, sql.export_frame(predictions(1, groups=(("S1", "I1"), ("S1", "I2"))),
                                                                 spec, "run-d"))
    assert (dropped.updated, dropped.deleted) == (10, 5)
    assert len(rows(conn, spec, "WHERE model_version = 1")) == 10
    assert len(rows(conn, spec, "WHERE model_version = 2")) == 15


def test_the_view_shows_the_latest_exported_champion_per_group(pg):
    server, _ = pg
    conn, spec = conn_of(server), spec_for("champ")
    view = f"SELECT DISTINCT model_version FROM {spec.view_name}"
    psycopg_writer.write(conn, spec, sql.export_frame(predictions(1), spec, "r1"))
    assert psycopg_writer.query(conn, view) == [(1,)]
    psycopg_writer.write(conn, spec, sql.export_frame(predictions(2, groups=(("S1", "I1"),)), spec, "r2"))
    assert psycopg_writer.query(conn, view) == [(2,)]
    assert psycopg_writer.query(conn, f"SELECT count(*) FROM {spec.view_name}") == [(5,)]
    time.sleep(0.01)  # a rollback of the champion to v1: its re-export is the latest again
    psycopg_writer.write(conn, spec, sql.export_frame(predictions(1), spec, "r3"))
    assert psycopg_writer.query(conn, view) == [(1,)]


def test_bad_credentials_name_host_and_database_and_write_nothing(pg, tmp_path):
    server, _ = pg
    conn, spec = conn_of(server), spec_for("creds")
    psycopg_writer.write(conn, spec, sql.export_frame(predictions(1), spec, "ok"))
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    bad = conn_of(server, password_file=str(wrong))
    with pytest.raises(ExportFailed) as e:
        psycopg_writer.write(bad, spec, sql.export_frame(predictions(1, shift=9), spec, "bad"))
    msg = str(e.value)
    assert f"PostgreSQL at 127.0.0.1:{server.port}, database 'mlkit'" in msg and "password authentication failed" in msg
    assert "not-the-password" not in msg and "nothing of this batch was written" in msg
    assert {r[5] for r in rows(conn, spec)} == {"ok"}


def test_an_unreachable_server_names_host_and_database_quickly(pg):
    server, _ = pg
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    conn, spec = conn_of(server, port=closed, connect_timeout_seconds=3), spec_for("nowhere")
    t0 = time.perf_counter()
    with pytest.raises(ExportFailed) as e:
        psycopg_writer.write(conn, spec, sql.export_frame(predictions(1), spec, "x"))
    assert time.perf_counter() - t0 < 10
    assert f"PostgreSQL at 127.0.0.1:{closed}, database 'mlkit'" in str(e.value) and "cannot connect" in str(e.value)
    with pytest.raises(ExportFailed, match="cannot read the password file"):
        conn_of(server, password_file="/nonexistent/password")


def test_a_failure_inside_the_transaction_rolls_everything_back(pg, monkeypatch):
    server, _ = pg
    conn, spec = conn_of(server), spec_for("atomic")
    # A first export that fails after creating the table and loading the stage leaves no table.
    real_apply = batch.apply_batch

    def apply_then_fail(db, *args, **kw):
        real_apply(db, *args, **kw)  # DELETE + MERGE ran inside the transaction ...
        db.execute("SELECT 1/0")  # ... then the database refuses the next statement

    monkeypatch.setattr(batch, "apply_batch", apply_then_fail)
    with pytest.raises(ExportFailed, match="rolled back: division by zero"):
        psycopg_writer.write(conn, spec, sql.export_frame(predictions(1), spec, "r1"))
    assert psycopg_writer.query(conn, "SELECT to_regclass(%s)", (spec.target,)) == [(None,)]
    monkeypatch.setattr(batch, "apply_batch", real_apply)
    psycopg_writer.write(conn, spec, sql.export_frame(predictions(1), spec, "r1"))
    monkeypatch.setattr(batch, "apply_batch", apply_then_fail)
    with pytest.raises(ExportFailed):
        psycopg_writer.write(conn, spec, sql.export_frame(predictions(1, groups=(("S9", "I9"),)), spec, "r2"))
    assert {(r[0], r[5]) for r in rows(conn, spec)} == {("S1", "r1"), ("S2", "r1")}  # the previous rows, all of them
    assert len(rows(conn, spec)) == 15


def test_a_table_of_another_shape_is_refused_by_name(pg):
    server, _ = pg
    conn = conn_of(server)
    old = sql.TableSpec("predictions", "shape", "shape_latest", ("store",), "date")
    one_key = predictions(1, groups=(("S1", "I1"),)).drop(columns=["item"])
    psycopg_writer.write(conn, old, sql.export_frame(one_key, old, "r1"))
    with pytest.raises(ExportFailed, match=r"table predictions\.shape does not have the column\(s\) item, lo_80, hi_80"):
        psycopg_writer.write(conn, spec_for("shape"), sql.export_frame(predictions(1), spec_for("shape"), "r2"))
    assert psycopg_writer.query(conn, f"SELECT count(*) FROM {old.target}") == [(5,)]


def test_rows_a_merge_cannot_take_are_named_before_connecting():
    spec = spec_for("never")
    dup = pd.concat([predictions(1, groups=(("S1", "I1"),)), predictions(1, groups=(("S1", "I1"),), days=1)])
    with pytest.raises(DataError, match="(?s)1 problem.*2 row\\(s\\) share a key; first: store=S1, item=I1, date=2025-01-01"):
        sql.export_frame(dup, spec, "r")
    with pytest.raises(DataError, match="column 'model_version' is missing"):
        sql.export_frame(predictions(1).drop(columns=["model_version"]), spec, "r")
    two = sql.export_frame(pd.concat([predictions(1), predictions(2)]), spec, "r")
    with pytest.raises(DataError, match="a batch is one model version"):
        sql.scope(two, spec)


def test_settings_refuse_names_a_bi_user_could_not_type():
    with pytest.raises(ValueError, match="'Predictions' is not a plain PostgreSQL name"):
        ExportSettings(schema="Predictions")
    with pytest.raises(ValueError, match="give the view its own name"):
        ExportSettings(table="t", view="t")
    assert "password" not in repr(dataclasses.replace(Connection("h", 1, "d", "u", "require", 5), password="s3cret")
                                  ).replace("password_file", "")


def test_the_spark_jdbc_edge_writes_the_same_rows_idempotently(pg, spark):
    """The Databricks driver (staging table + one JDBC transaction), run here on Debian's jar."""
    from mlkit_workloads.export import jdbc_writer

    from mlkit_workloads.local_spark import POSTGRES_JDBC

    if not POSTGRES_JDBC.exists():
        pytest.skip("needs Debian's libpostgresql-jdbc-java")
    server, _ = pg
    conn, spec = conn_of(server), spec_for("jdbc")
    frame = sql.export_frame(predictions(1), spec, "j1")
    first = jdbc_writer.write(spark, conn, spec, spark.createDataFrame(frame), sql.scope(frame, spec))
    assert (first.rows, first.inserted, first.created) == (15, 15, True)
    frame = sql.export_frame(predictions(1, groups=(("S1", "I1"), ("S1", "I2"))), spec, "j2")
    again = jdbc_writer.write(spark, conn, spec, spark.createDataFrame(frame), sql.scope(frame, spec))
    assert (again.inserted, again.updated, again.deleted) == (0, 10, 5)
    assert {r[5] for r in rows(conn, spec)} == {"j2"} and len(rows(conn, spec)) == 10
    assert psycopg_writer.query(conn, f"SELECT count(*) FROM {spec.staging}") == [(0,)]  # the batch left staging
    bad = Connection(**{**conn.__dict__, "password": "wrong"})
    with pytest.raises(ExportFailed, match=f"PostgreSQL at 127.0.0.1:{server.port}, database 'mlkit'.*cannot connect"):
        jdbc_writer.write(spark, bad, spec, spark.createDataFrame(frame), sql.scope(frame, spec))
    assert len(rows(conn, spec)) == 10


def test_the_server_is_reused_restarted_on_its_port_and_stopped(pg):
    server, state = pg
    same = postgres.ensure(state)
    assert (same.port, same.started) == (server.port, False)
    assert (state / "postgres" / "password").stat().st_mode & 0o077 == 0  # the password file is ours only
    listening = psycopg_writer.query(conn_of(server), "SHOW listen_addresses")
    assert listening == [("127.0.0.1",)]
    stopped = postgres.stop(state)
    assert stopped is not None and postgres.stop(state) is None
    back = postgres.ensure(state)
    assert (back.port, back.started) == (server.port, True)


def test_the_cloud_setup_sql_gives_the_export_role_just_enough(pg, spark):
    """The SQL the platform stack outputs, run here (the Entra-only role function replaced by a local
    login role of the same name): the export role writes through both drivers, and can create nothing."""
    import psycopg
    from mlkit_workloads.export import jdbc_writer

    from stacks.platform.postgres import DatabaseRole, setup_sql

    server, _ = pg
    spec = sql.TableSpec("bi", "preds", "preds_latest", KEYS, "date", ("lo_80", "hi_80"))
    role = "dbac-mlk-test-weu-export"
    text = setup_sql(server.database, spec, (DatabaseRole(role, ("SELECT", "INSERT", "UPDATE", "DELETE"), "tables"),))
    head, body = text.split(f"\\connect {server.database}\n")
    assert "pgaadauth_create_principal" in head
    admin = conn_of(server)
    with psycopg.connect(host=admin.host, port=admin.port, dbname=admin.database, user=admin.user,
                         password=admin.password, autocommit=True) as db:
        db.execute(f'DROP ROLE IF EXISTS "{role}"')
        db.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'local-only'")
        for statement in body.split(";\n"):
            if statement.strip():
                db.execute(statement)
    as_role = Connection(**{**admin.__dict__, "user": role, "password": "local-only"})
    written = psycopg_writer.write(as_role, spec, sql.export_frame(predictions(1), spec, "cloud-1"))
    assert (written.inserted, written.created) == (15, False)
    frame = sql.export_frame(predictions(1, shift=1), spec, "cloud-2")
    again = jdbc_writer.write(spark, as_role, spec, spark.createDataFrame(frame), sql.scope(frame, spec))
    assert (again.updated, again.inserted) == (15, 0)
    with pytest.raises(ExportFailed, match="rolled back: permission denied for database mlkit"):
        other = sql.TableSpec("bi", "elsewhere", "elsewhere_latest", KEYS, "date")
        psycopg_writer.write(as_role, other, sql.export_frame(predictions(1), other, "x"))
    assert psycopg_writer.query(admin, f"SELECT count(*) FROM {spec.view_name}") == [(15,)]


@pytest.mark.slow
def test_mlkit_run_exports_and_a_rerun_keeps_the_row_count(tmp_path):
    """`mlkit run --env local` (tiny data) ends with the champion's predictions in the local PostgreSQL;
    the identical re-run replaces them (same count, the new run id); `mlkit stop` stops the server."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    envs, state = tmp_path / "environments", tmp_path / "state"
    shutil.copytree(root / "environments", envs)
    local = yaml.safe_load((envs / "local.yaml").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    local["local"].update(state_dir=str(state), mlflow_port=port)
    wl = local["workloads"]
    wl["tracking"] = {"experiment_prefix": "/Shared/mlkit-export-e2e"}
    wl["forecast"].update(registered_model="forecast_export_e2e", synthetic={"stores": 2, "items": 2, "days": 300},
                          search={"n_trials": 1, "max_rounds": 10, "early_stopping_rounds": 3},
                          gates={"min_share_ok": 0.2, "max_median_wape": 0.9})
    (envs / "local.yaml").write_text(yaml.safe_dump(local))
    cli = [str(Path(sys.executable).parent / "mlkit")]
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    try:
        runs = []
        for _ in range(2):
            done = subprocess.run([*cli, "run", "--environments", str(envs)], cwd=root, env=env, capture_output=True,
                                  text=True, timeout=400)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            server = postgres.ensure(state)
            assert not server.started  # the run left it running, for BI clients
            conn = conn_of(server)
            runs.append(psycopg_writer.query(
                conn, "SELECT count(*), count(DISTINCT run_id), min(run_id) FROM predictions.forecast_predictions"))
        (first,), (second,) = runs
        assert first[0] > 0 and first[0] == second[0] and second[1] == 1 and first[2] != second[2]
        assert psycopg_writer.query(conn, "SELECT count(*) FROM predictions.forecast_latest_champion") == [(first[0],)]
        stopped = subprocess.run([*cli, "stop", "--environments", str(envs)], cwd=root, env=env, capture_output=True,
                                 text=True, timeout=120)
        assert "stopped PostgreSQL 127.0.0.1:" in " ".join(stopped.stdout.split()), stopped.stdout
        assert not postgres._running(state / "postgres" / "data")
    finally:
        from mlkit.local import mlflow_server

        mlflow_server.stop_all(state)
        postgres.stop(state)
