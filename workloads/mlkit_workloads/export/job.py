"""export: the champion's batch predictions (what score just wrote) into the BI database.

Reads the predictions table's rows of the scored model version, shapes them (:mod:`.sql`) and
hands them to the driver: psycopg locally (one transaction), Spark JDBC on Databricks (staging
table, then one transaction). The password is a file's content locally and an Entra ID token of
the job's identity in the cloud (:mod:`.entra`), never a setting.
"""

from __future__ import annotations

from ..runtime import TABLES, Runtime
from . import sql
from .connection import connection


def run(rt: Runtime) -> dict:
    cfg = rt.settings.export
    if not cfg.enabled:
        return {"outcome": "skipped", "note": "export is off for this environment (workloads.export.enabled)"}
    name, version = rt.context.get("score", "model_name"), rt.context.get("score", "model_version")
    table = TABLES["predictions"]
    if not rt.context.get("score", "rows_scored"):
        return {"outcome": "skipped", "note": f"score wrote no predictions for {name} v{version}: nothing to export"}
    pdf = rt.tables.read_pandas(table)
    pdf = pdf[(pdf["model_name"] == name) & (pdf["model_version"].astype(str) == str(version))]
    bands = tuple(c for c in pdf.columns if c.startswith(("lo_", "hi_")))
    spec = sql.table_spec(rt.settings, bands)
    frame = sql.export_frame(pdf, spec, rt.run_id)
    if cfg.driver == "spark_jdbc":
        from . import entra, jdbc_writer

        conn = connection(cfg, entra.token_provider(cfg) if cfg.auth == "entra" else None)
        sdf = rt.spark.createDataFrame(frame)
        written = jdbc_writer.write(rt.spark, conn, spec, sdf, sql.scope(frame, spec))
    else:
        from . import psycopg_writer

        conn = connection(cfg)
        written = psycopg_writer.write(conn, spec, frame)
    rt.say(f"exported {written.rows} rows of {name} v{version} to {spec.schema}.{spec.table}")
    result = {"model_name": name, "model_version": version, "rows_exported": written.rows,
              "rows_inserted": written.inserted, "rows_updated": written.updated, "rows_deleted": written.deleted,
              "export_table": f"{cfg.database}.{spec.schema}.{spec.table}", "export_view": f"{spec.schema}.{spec.view}",
              "export_server": f"{conn.host}:{conn.port}", "run_id": rt.run_id}
    for k, v in result.items():
        rt.context.set(k, v)
    return result
