"""The steps of one export transaction, on any driver that can run a statement.

A driver gives a :class:`Session` (psycopg locally, a JDBC connection through Spark's JVM on
Databricks) already inside its transaction; these steps decide what to run and check the table
they find. They never commit: the driver commits once after the last step, or rolls everything back.
"""

from __future__ import annotations

from typing import Protocol

from . import sql
from .connection import Connection, ExportFailed


class Session(Protocol):
    mark: str  # the driver's parameter placeholder: %s (psycopg) or ? (JDBC)

    def query(self, text: str, params: tuple = ()) -> list[tuple]: ...

    def execute(self, text: str, params: tuple = ()) -> int:
        """Run a statement; the rows it changed (-1 when the driver cannot tell)."""
        ...


def prepare_table(db: Session, conn: Connection, spec: sql.TableSpec, staging: bool = False) -> bool:
    """Create the schema and table (and the permanent staging table) where missing; check an existing
    table has every column the batch writes. Returns True when the table was created."""
    m = db.mark
    created = db.query(f"SELECT to_regclass({m})", (spec.target,))[0][0] is None
    if created:
        db.execute(sql.create_schema(spec))
        db.execute(sql.create_table(spec))
    else:
        present = [r[0] for r in db.query(sql.table_columns_query(m), (spec.schema, spec.table))]
        missing = sql.missing_columns(spec, present)
        if missing:
            raise ExportFailed(conn, f"table {spec.schema}.{spec.table} does not have the column(s) "
                               f"{', '.join(missing)} this batch writes",
                               "its group keys or intervals changed: rename the table (its rows stay readable) "
                               "or set workloads.export.table to a new one, and export again")
    if staging and db.query(f"SELECT to_regclass({m})", (spec.staging,))[0][0] is None:
        db.execute(sql.create_staging_table(spec))
    return created


def apply_batch(db: Session, spec: sql.TableSpec, source: str, source_params: tuple,
                scope: tuple[str, int, object, object]) -> tuple[int, int]:
    """DELETE the version's rows the batch replaces without a successor, MERGE the batch, create the
    view where missing. Returns (rows updated, rows deleted)."""
    # A table created or filled moments ago has no statistics yet (autovacuum analyzes later): the
    # planner then takes it for one row and nests a scan of the batch inside a scan of the table, and
    # a re-run of 28k rows took 240 s (bench/export_sql.py). Every join here is on the full key: hash
    # joins are always right, so nested loops are off for this transaction only.
    db.execute("SET LOCAL enable_nestloop = off")
    updated = int(db.query(sql.count_matched(spec, source), source_params)[0][0])
    deleted = db.execute(sql.delete_replaced(spec, source, db.mark), (*scope, *source_params))
    db.execute(sql.merge(spec, source), source_params)
    if db.query(f"SELECT to_regclass({db.mark})", (spec.view_name,))[0][0] is None:
        db.execute(sql.create_view(spec))
    return updated, deleted
