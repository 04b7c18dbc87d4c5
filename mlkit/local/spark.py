"""One local Spark session, configured the way the many-models job wants it."""

from __future__ import annotations

import os
from pathlib import Path


# The PostgreSQL JDBC driver of Debian's libpostgresql-jdbc-java (Databricks runtimes ship their own).
POSTGRES_JDBC = Path("/usr/share/java/postgresql.jar")


def local_session(cores: int = 2, app: str = "mlkit-local", warehouse: str | None = None):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    from pyspark.sql import SparkSession

    log4j = Path(__file__).with_name("log4j2.properties")
    builder = (SparkSession.builder.master(f"local[{cores}]").appName(app)
               .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.memory", "3g")
               .config("spark.sql.session.timeZone", "UTC")
               # AQE would coalesce the small per-group partitions and train groups one after another.
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


def _python() -> str:
    import sys

    return sys.executable
