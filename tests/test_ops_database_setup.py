"""Deploy's database step on a real PostgreSQL (the machine's own) and real terraform outputs.

The setup SQL is the platform stack's own (``setup_sql`` with the roles the stack grants), carried
through a terraform output like the real one; only the Entra parts are stood in: the admin group
signs in with the local superuser's password instead of a token, and ``pgaadauth_create_principal``
(an Azure-only function) is a local one with the same signature that creates the role.
"""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest
from mlkit_workloads.export import sql
from ops_helpers import ENVIRONMENTS, edit_stack, make_cdktf_out

from envconfig.loader import load_environment
from mlkit.local import postgres
from mlkit.ops import database_setup
from mlkit.ops.database_setup import DatabaseOutcome, run_script, script_blocks
from mlkit.ops.deploy import GateOutcome, Steps, deploy
from mlkit.ops.terraform import Terraform, find_terraform
from stacks.platform.postgres import DatabaseRole, setup_sql

pytestmark = [pytest.mark.skipif(not postgres.BIN_ROOT.exists(), reason="needs the Debian postgresql package"),
              pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not on PATH")]

WRITER, READER = "dbac-mlk-ci-weu-export", "grp-bi-readers"
SPEC = sql.TableSpec("predictions", "forecast_predictions", "forecast_latest_champion", ("store", "item"), "date",
                     ("lo_80", "hi_80"))
# Azure's function (database `postgres` only): a role for an Entra principal, found by its display name.
STAND_IN = """CREATE OR REPLACE FUNCTION pgaadauth_create_principal(name text, is_admin boolean, is_mfa boolean)
RETURNS text LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('CREATE ROLE %I LOGIN', name); RETURN name; END $$"""


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    state = tmp_path_factory.mktemp("pg") / "state"
    server = postgres.ensure(state)
    with psycopg.connect(**_login(server, "postgres")) as conn:
        conn.execute(STAND_IN)
    yield server
    postgres.stop(state)
    assert not postgres._running(server.data_dir), "the test's PostgreSQL still runs"


def _login(server, database: str) -> dict:
    return dict(host=server.host, port=server.port, dbname=database, user=server.user,
                password=server.password_file.read_text(), sslmode="disable")


def _script(database: str) -> str:
    return setup_sql(database, SPEC, (DatabaseRole(WRITER, ("SELECT", "INSERT", "UPDATE", "DELETE"), "tables"),
                                      DatabaseRole(READER, ("SELECT",), "view")))


def _local_step(server):
    """What entra_setup does, signed in as the local superuser (no Entra, no TLS on loopback)."""
    def step(cfg, host, script):
        try:
            done = run_script(script, host, server.user, server.password_file.read_text, port=server.port,
                              sslmode="disable")
        except database_setup.SetupFailed as e:
            return DatabaseOutcome(host, "failed", str(e))
        return DatabaseOutcome(host, "applied", ", ".join(done))
    return step


def _privileges(server, role: str) -> set[tuple[str, str]]:
    with psycopg.connect(**_login(server, server.database)) as conn:
        rows = conn.execute("SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                            "WHERE grantee = %s", (role,)).fetchall()
    return set(rows)


def _with_database_outputs(cdktf, env: str, script: str) -> None:
    """The platform stack's outputs as the real one has them (host, then the SQL)."""
    def add(doc):
        doc["output"]["postgres_fqdn"] = {"value": "127.0.0.1"}
        doc["output"]["postgres_setup_sql"] = {"value": script}
    edit_stack(cdktf, f"{env}-platform", add)


def _deploy(tmp_path, cdktf, step):
    cfg = load_environment("ci", ENVIRONMENTS)
    steps = Steps(synth=lambda cfg, d: pytest.fail("synth must not run"), gate=lambda cfg, d: GateOutcome("passed"),
                  wheel=lambda out: _wheel(out), credentials=lambda cfg: None, database=step)
    return deploy(cfg, environments=ENVIRONMENTS, out=tmp_path / "out", repo=tmp_path, steps=steps,
                  tf=Terraform(find_terraform()), cdktf_out=cdktf)


def _wheel(out):
    from mlkit.ops import artifacts

    out.mkdir(parents=True, exist_ok=True)
    path = out / "mlkit_workloads-0.0.0-py3-none-any.whl"
    path.write_bytes(b"not a real wheel: the database step does not read it")
    return artifacts.Wheel(path, "0" * 64)


def test_script_blocks_follow_psql_connect_and_drop_comments():
    blocks = script_blocks(_script("mlkit"))
    assert [db for db, _ in blocks] == ["postgres", "mlkit"]
    assert "pgaadauth_create_principal" in blocks[0][1] and "--" not in blocks[0][1]
    assert blocks[1][1].startswith("CREATE SCHEMA") and "GRANT SELECT ON" in blocks[1][1]
    with pytest.raises(ValueError, match=r"only \\connect is understood, not '\\\\i'"):
        script_blocks("SELECT 1;\n\\i other.sql\n")


def test_deploy_runs_the_stacks_setup_sql_after_the_platform_applies_and_again_idempotently(tmp_path, pg):
    cdktf = make_cdktf_out(tmp_path / "cdktf.out", "ci")
    _with_database_outputs(cdktf, "ci", _script(pg.database))  # through terraform: `$$` must survive it
    report = _deploy(tmp_path, cdktf, _local_step(pg))
    assert [s.status for s in report.stacks] == ["applied", "applied"]
    assert (report.database.host, report.database.status, report.database.detail) == \
        ("127.0.0.1", "applied", f"postgres, {pg.database}")
    assert report.ok and (tmp_path / "out/release.json").exists()
    assert "BI database setup on `127.0.0.1`: **applied**" in (tmp_path / "out/summary.md").read_text()
    assert json.loads((tmp_path / "out/deploy.json").read_text())["database_setup"]["status"] == "applied"
    # least privilege: the export identity reads and writes its two tables, BI readers see the view only
    writes = {(t, p) for t in ("forecast_predictions", "forecast_predictions_staging")
              for p in ("SELECT", "INSERT", "UPDATE", "DELETE")}
    assert _privileges(pg, WRITER) == writes
    assert _privileges(pg, READER) == {("forecast_latest_champion", "SELECT")}
    again = _deploy(tmp_path / "again", cdktf, _local_step(pg))  # nothing to apply; the SQL runs again
    assert [s.status for s in again.stacks] == ["no changes", "no changes"] and again.database.status == "applied"
    assert _privileges(pg, WRITER) == writes


def test_a_failing_setup_fails_the_deploy_and_leaves_that_database_as_it_was(tmp_path, pg):
    broken = _script(pg.database).replace('GRANT SELECT ON "predictions"."forecast_latest_champion"',
                                          'GRANT SELECT ON "predictions"."no_such_view"')
    new_reader = "grp-new-readers"
    broken = broken.replace(READER, new_reader)
    cdktf = make_cdktf_out(tmp_path / "cdktf.out", "ci")
    _with_database_outputs(cdktf, "ci", broken)
    report = _deploy(tmp_path, cdktf, _local_step(pg))
    assert report.database.status == "failed" and not report.ok
    assert f"database '{pg.database}' on 127.0.0.1:{pg.port}" in report.database.detail
    assert 'relation "predictions.no_such_view" does not exist' in report.database.detail
    assert "(set up before it: postgres)" in report.database.detail
    assert not (tmp_path / "out/release.json").exists()
    # the role was created in `postgres` (its own transaction); the failed database's grants are rolled back
    assert _privileges(pg, new_reader) == set()


def test_a_server_this_runner_cannot_reach_is_blocked_with_the_command_to_run_inside_the_network():
    cfg = load_environment("ci", ENVIRONMENTS)
    host = "127.0.0.1"
    if database_setup.connect_error(host, 5432) is None:
        pytest.skip("something listens on 127.0.0.1:5432")
    out = database_setup.entra_setup(cfg, host, _script("mlkit"), credential=object())
    assert out.status == "blocked"
    assert f"{host}:5432 is not reachable from this runner" in out.detail
    assert f'psql "host={host} dbname=postgres' in out.detail and "sslmode=require" in out.detail
