"""The export task's write vs the predictions table write score does for the same rows; psycopg vs
Spark JDBC (the driver choice); what the local PostgreSQL costs a run (first init, start, reuse).

    python bench/export_sql.py [--groups 30 1000] [--horizon 28]

Starts a PostgreSQL under a temp state dir (stopped at the end) and, for the JDBC leg, a local[2]
Spark session with Debian's driver jar. Per size: the Delta ``replace_where`` of the rows (what score
writes), the psycopg export (first write, then the re-run that replaces them), the Spark JDBC export
(re-run). Prints the ratios measured in this one run and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from mlkit_workloads.export import jdbc_writer, psycopg_writer, sql  # noqa: E402
from mlkit_workloads.export.connection import connection  # noqa: E402
from mlkit_workloads.export.settings import ExportSettings  # noqa: E402
from mlkit_workloads.tables import DeltaRsStore  # noqa: E402

from mlkit.local import postgres  # noqa: E402


def batch(groups: int, horizon: int) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=horizon, freq="D", tz="UTC")
    rows = [{"store": f"S{g // 10:03d}", "item": f"I{g % 10}", "step": s + 1, "date": d, "prediction": 1.0 * s,
             "lo_80": 0.0, "hi_80": 2.0, "lo_95": -1.0, "hi_95": 3.0, "model_type": "auto_ets", "model_name": "m",
             "model_version": "1", "data_table_version": 0, "trained_through": pd.Timestamp("2024-12-31", tz="UTC"),
             "scored_at": pd.Timestamp.now(tz="UTC")} for g in range(groups) for s, d in enumerate(dates)]
    return pd.DataFrame(rows)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, nargs="+", default=[30, 1000])
    ap.add_argument("--horizon", type=int, default=28)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        os.chmod(tmp, 0o755)
        state = Path(tmp) / "state"
        t_init = timed(lambda: postgres.ensure(state))
        postgres.stop(state)
        t_start = timed(lambda: postgres.ensure(state))
        t_reuse = timed(lambda: postgres.ensure(state))
        server = postgres.ensure(state)
        conn = connection(ExportSettings(enabled=True, host=server.host, port=server.port, user=server.user,
                                         password_file=str(server.password_file), sslmode="disable"))
        from mlkit_workloads.local_spark import local_session

        spark = local_session(2, app="bench-export")
        try:
            print(f"local PostgreSQL: first init {t_init:.2f} s, start {t_start:.2f} s, reuse {t_reuse:.3f} s")
            for groups in args.groups:
                pdf = batch(groups, args.horizon)
                spec = sql.TableSpec("bench", f"p{groups}", f"p{groups}_latest", ("store", "item"), "date",
                                     ("lo_80", "hi_80", "lo_95", "hi_95"))
                delta = DeltaRsStore(Path(tmp) / "tables")
                delta.replace_where(f"pred{groups}", pdf, {"model_version": "1"})
                t_delta = timed(lambda: delta.replace_where(f"pred{groups}", pdf, {"model_version": "1"}))
                t_frame = timed(lambda: sql.export_frame(pdf, spec, "bench"))
                frame = sql.export_frame(pdf, spec, "bench")
                t_first = timed(lambda: psycopg_writer.write(conn, spec, frame))
                t_rerun = timed(lambda: psycopg_writer.write(conn, spec, frame))
                sdf = spark.createDataFrame(frame).cache()
                sdf.count()
                jdbc_writer.write(spark, conn, spec, sdf, sql.scope(frame, spec))  # warm the JVM's driver
                t_jdbc = timed(lambda: jdbc_writer.write(spark, conn, spec, sdf, sql.scope(frame, spec)))
                export = t_frame + t_rerun
                print(f"{len(pdf):>7} rows ({groups} groups x {args.horizon}): Delta replace_where {t_delta:.3f} s; "
                      f"export (shape {t_frame:.3f} + psycopg re-run {t_rerun:.3f}) {export:.3f} s, first write "
                      f"{t_first:.3f} s; Spark JDBC re-run {t_jdbc:.3f} s")
                print(f"        ratio export / score's Delta write {export / t_delta:.2f}; "
                      f"Spark JDBC / psycopg {t_jdbc / t_rerun:.2f}")
        finally:
            spark.stop()
            postgres.stop(state)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
