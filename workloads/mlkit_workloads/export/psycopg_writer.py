"""The local edge: one psycopg connection, one transaction (the batch COPYed into a temporary
stage, then DELETE + MERGE and the view). Any failure rolls the whole transaction back, DDL
included: a first export that fails leaves no table behind, a later one the previous rows."""

from __future__ import annotations

import pandas as pd

from . import batch, sql
from .connection import Connection, ExportFailed, Written

STAGE = "mlkit_export_stage"


class _Session:
    mark = "%s"

    def __init__(self, cur):
        self.cur = cur

    def query(self, text: str, params: tuple = ()) -> list[tuple]:
        self.cur.execute(text, params or None)
        return self.cur.fetchall()

    def execute(self, text: str, params: tuple = ()) -> int:
        self.cur.execute(text, params or None)
        return self.cur.rowcount


def connect(conn: Connection):
    import psycopg

    try:
        return psycopg.connect(host=conn.host, port=conn.port, dbname=conn.database, user=conn.user,
                               password=conn.password, sslmode=conn.sslmode, connect_timeout=conn.timeout,
                               application_name="mlkit-export")
    except psycopg.OperationalError as e:
        raise ExportFailed(conn, "cannot connect", _first_line(e)) from None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def write(conn: Connection, spec: sql.TableSpec, frame: pd.DataFrame) -> Written:
    import psycopg

    scope = sql.scope(frame, spec)
    with connect(conn) as db:
        try:
            with db.transaction(), db.cursor() as cur:
                session = _Session(cur)
                created = batch.prepare_table(session, conn, spec)
                cur.execute(sql.temporary_stage(spec, STAGE))
                columns = ", ".join(sql.quote(c) for c in spec.names)
                with cur.copy(f"COPY {sql.quote(STAGE)} ({columns}) FROM STDIN") as cp:
                    for row in _rows(frame):
                        cp.write_row(row)
                # Temporary tables get no autovacuum statistics: without them the planner nests loops
                # over the stage for every target row (28k rows: 170 s instead of well under one).
                cur.execute(f"ANALYZE {sql.quote(STAGE)}")
                updated, deleted = batch.apply_batch(session, spec, sql.quote(STAGE), (), scope)
        except psycopg.Error as e:
            raise ExportFailed(conn, "the export transaction failed and was rolled back", _first_line(e)) from None
    return Written(len(frame), len(frame) - updated, updated, deleted, created)


def _rows(frame: pd.DataFrame):
    """Rows with None for missing values (COPY's NULL), timestamps as Python datetimes."""
    obj = frame.astype(object).where(frame.notna(), None)
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.DatetimeTZDtype):
            obj[c] = [None if pd.isna(v) else v.to_pydatetime() for v in frame[c]]
    return obj.itertuples(index=False, name=None)


def query(conn: Connection, text: str, params: tuple = ()) -> list[tuple]:
    """Read back (tests, the run's summary): one short read-only statement."""
    with connect(conn) as db, db.cursor() as cur:
        cur.execute(text, params or None)
        return cur.fetchall()
