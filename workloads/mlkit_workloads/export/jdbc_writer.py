"""The Databricks edge: Spark JDBC (the runtime ships the PostgreSQL driver; locally Debian's
``libpostgresql-jdbc-java`` jar on the session's class path).

Executors cannot join the driver's transaction, so the batch goes to a permanent staging table
tagged with its batch id (the model name and version: a retried run clears its own leftovers
first); then one driver-side JDBC transaction DELETEs + MERGEs it into the target, clears the
batch from staging and commits. The target changes only in that transaction.
"""

from __future__ import annotations

import datetime as dt

from . import batch, sql
from .connection import Connection, ExportFailed, Written

DRIVER = "org.postgresql.Driver"


class _Session:
    mark = "?"

    def __init__(self, jvm, jconn):
        self.jvm, self.jconn = jvm, jconn

    def _prepare(self, text: str, params: tuple):
        ps = self.jconn.prepareStatement(text)
        for i, v in enumerate(params, start=1):
            if isinstance(v, bool) or v is None:
                raise TypeError(f"unsupported JDBC parameter {v!r}")
            if isinstance(v, int):
                ps.setLong(i, v)
            elif isinstance(v, dt.date):
                ps.setDate(i, self.jvm.java.sql.Date.valueOf(v.isoformat()))
            else:
                ps.setString(i, str(v))
        return ps

    def query(self, text: str, params: tuple = ()) -> list[tuple]:
        ps = self._prepare(text, params)
        rs, rows = ps.executeQuery(), []
        n = rs.getMetaData().getColumnCount()
        while rs.next():
            rows.append(tuple(rs.getString(i) for i in range(1, n + 1)))
        ps.close()
        return rows

    def execute(self, text: str, params: tuple = ()) -> int:
        ps = self._prepare(text, params)
        ps.execute()
        count = ps.getUpdateCount()
        ps.close()
        return int(count)


def _connect(spark, conn: Connection):
    jvm = spark.sparkContext._jvm
    props = jvm.java.util.Properties()
    props.setProperty("user", conn.user)
    props.setProperty("password", conn.password)
    try:
        jvm.java.lang.Class.forName(DRIVER)
        jconn = jvm.java.sql.DriverManager.getConnection(conn.jdbc_url, props)
    except Exception as e:  # noqa: BLE001 - py4j wraps the SQLException: keep its first line
        raise ExportFailed(conn, "cannot connect", _java_message(e)) from None
    return jvm, jconn


def _java_message(e: Exception) -> str:
    java = getattr(e, "java_exception", None)
    text = str(java.getMessage()) if java is not None else str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def write(spark, conn: Connection, spec: sql.TableSpec, sdf, scope: tuple[str, int, object, object]) -> Written:
    """``sdf``: the batch as a Spark DataFrame in ``spec.names`` order (dates as DateType)."""
    from pyspark.sql import functions as F

    batch_id = f"{scope[0]}@{scope[1]}"
    jvm, jconn = _connect(spark, conn)
    try:
        jconn.setAutoCommit(False)
        db = _Session(jvm, jconn)
        created = batch.prepare_table(db, conn, spec, staging=True)
        db.execute(sql.clear_batch(spec, db.mark), (batch_id,))
        jconn.commit()  # the (empty) staging table must be visible to the executors' connections
        rows = sdf.count()
        (sdf.select(F.lit(batch_id).alias(sql.BATCH_ID), *spec.names).write.mode("append")
         .jdbc(conn.jdbc_url, f"{spec.schema}.{spec.table}_staging",
               properties={"user": conn.user, "password": conn.password, "driver": DRIVER}))
        db.execute(f"ANALYZE {spec.staging}")  # fresh statistics: hash joins against the batch, not loops
        source = sql.batch_source(spec, db.mark)
        updated, deleted = batch.apply_batch(db, spec, source, (batch_id,), scope)
        db.execute(sql.clear_batch(spec, db.mark), (batch_id,))
        jconn.commit()
    except ExportFailed:
        jconn.rollback()
        raise
    except Exception as e:  # noqa: BLE001 - a SQLException through py4j, or the executors' write
        try:
            jconn.rollback()
        finally:
            raise ExportFailed(conn, "the export transaction failed and was rolled back", _java_message(e)) from None
    finally:
        jconn.close()
    return Written(rows, rows - updated, updated, deleted, created)
