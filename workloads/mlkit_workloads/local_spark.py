"""A Spark session in local mode, configured the way the many-models job wants it: what
`mlkit run --env local` runs the job graph on, and what the tests share (one per test session).

AQE off (it would coalesce the small per-group partitions and train groups one after another),
3 shuffle partitions per core, Arrow on, UTC, the UI off and every socket on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LOG4J = Path(__file__).with_name("log4j2.properties")  # the JVM says only what is wrong


# The PostgreSQL JDBC driver of Debian's libpostgresql-jdbc-java (Databricks runtimes ship their own).
POSTGRES_JDBC = Path("/usr/share/java/postgresql.jar")


def local_session(cores: int = 2, app: str = "mlkit-local", warehouse: str | None = None):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(f"local[{cores}]").appName(app)
               .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{LOG4J}")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.memory", "3g")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.adaptive.enabled", "false")
               .config("spark.sql.shuffle.partitions", str(3 * cores))
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.python.worker.reuse", "true"))
    if warehouse:
        builder = builder.config("spark.sql.warehouse.dir", warehouse)
    if POSTGRES_JDBC.exists():  # Debian's driver (scripts/setup.sh): the export's Spark JDBC edge runs here too
        builder = (builder.config("spark.jars", str(POSTGRES_JDBC))
                   .config("spark.driver.extraClassPath", str(POSTGRES_JDBC)))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
