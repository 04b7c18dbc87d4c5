"""ingest: read the configured source, check it against the column mapping, append new rows.

Order matters: every check runs before the first write, so a bad file leaves the table as it
was. Re-running with the same input inserts nothing (an insert-only MERGE on the row keys).
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from pathlib import Path

from .compat import try_cast
from .errors import DataError, WorkloadError
from .runtime import TABLES, Runtime
from .settings import Source, WorkloadSettings

NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")
TEMPORAL = ("date", "timestamp", "timestamp_ntz")


@dataclass(frozen=True)
class Spec:
    """What a dataset needs: column -> kind ('numeric', 'timestamp', 'key', 'any') and its row keys."""

    table: str
    columns: dict[str, str]
    keys: list[str]  # empty: key rows by content (no natural key)


def spec_for(dataset: str, settings: WorkloadSettings) -> Spec:
    if dataset == "forecast":
        c = settings.forecast.columns
        cols = {k: "key" for k in c.group_keys} | {c.timestamp: "timestamp", c.target: "numeric"}
        cols |= {f: "numeric" for f in c.features}
        return Spec(TABLES["forecast"], cols, [*c.group_keys, c.timestamp])
    if dataset == "classifier":
        c = settings.classifier.columns
        cols = {c.target: "key"} | {f: ("any" if f in c.categorical else "numeric") for f in c.features}
        return Spec(TABLES["classifier"], cols, [])
    raise WorkloadError(f"unknown dataset {dataset!r}: use forecast or classifier")


def _type_ok(kind: str, spark_type: str) -> bool:
    if kind == "numeric":
        return spark_type in NUMERIC or spark_type.startswith("decimal")
    if kind == "timestamp":
        return spark_type in TEMPORAL or spark_type == "string"  # strings are parsed below
    return True


def _printable(name: str) -> bool:
    return name.isprintable() and len(name) <= 200


def check_schema(dtypes: dict[str, str], spec: Spec, empty: frozenset[str] = frozenset()) -> list[str]:
    """Missing columns and columns of the wrong type (pure: Spark type names in, messages out).

    A header that is not text (a binary file read as CSV) is one problem, and its bytes are never
    echoed; the columns present are listed once, after the missing ones. ``empty``: columns with
    no value in any row (Spark reads those as strings: "has no values" is the accurate reason).
    """
    if dtypes and not all(_printable(c) for c in dtypes):
        return ["the header row is not text (is this a binary file? give CSV with a header row, or parquet)"]
    problems, missing = [], []
    for name, kind in spec.columns.items():
        if name not in dtypes:
            near = [c for c in dtypes if c.lower() == name.lower()]
            hint = f" (found {near[0]!r}: column names are case-sensitive)" if near else ""
            missing.append(name)
            problems.append(f"column {name!r} is missing{hint}")
        elif name in empty:
            problems.append(f"column {name!r} has no values (every row is empty)")
        elif not _type_ok(kind, dtypes[name]):
            problems.append(f"column {name!r} must be {kind} but is {dtypes[name]}")
    if missing:
        shown = list(dtypes)[:30]
        problems.append(f"columns present: {', '.join(shown) or 'none'}" + (" …" if len(dtypes) > 30 else ""))
    return problems


# --------------------------------------------------------------------------- reading


def describe(source: Source) -> str:
    if source.format in ("csv", "parquet"):
        return f"{source.format} file {source.path}"
    if source.format == "jdbc":
        return f"jdbc table {source.table} at {source.jdbc_url}"
    return {"synthetic": "synthetic sales generator", "islp_default": "ISLP Default.csv"}[source.format]


def _spark_reason(e: Exception) -> str:
    """Spark's own reason (an error class like [FAILED_READ_FILE...] or a Java exception line) says
    more than py4j's "An error occurred while calling o51.parquet"."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    first = next((line for line in lines if re.search(r"\[[A-Z_.]+\]|Exception: ", line)),
                 lines[0] if lines else type(e).__name__)
    return first[:300]


# The raw zone's layout, as Data Factory's copy activity writes it: <folder>/load_date=YYYY-MM-DD/*.parquet.
# Each load is a complete copy of the source table on that date, so ingest reads one partition.
LOAD_DATE = "load_date"


def latest_load(sdf, where: str):
    """One load of a raw folder: the newest load_date partition when the folder has several (Spark's
    partition discovery shows them as a column); a single partition or plain files as they are."""
    from pyspark.sql import functions as F

    # A column of that name in the data itself is data: only the folder layout makes it a partition.
    if LOAD_DATE not in sdf.columns or not any(f"/{LOAD_DATE}=" in f for f in sdf.inputFiles()[:1]):
        return sdf, None
    latest = sdf.agg(F.max(LOAD_DATE)).first()[0]
    if latest is None:
        raise DataError(where, [f"no {LOAD_DATE}=YYYY-MM-DD partition has rows"])
    return sdf.where(F.col(LOAD_DATE) == F.lit(latest)).drop(LOAD_DATE), str(latest)


def read_raw(rt: Runtime, raw_path: str):
    """The raw-zone folder an orchestrator named (job parameter raw_path): parquet, one load."""
    where = f"raw folder {raw_path}"
    if "://" not in raw_path and not raw_path.startswith("/Volumes") and not Path(raw_path).is_dir():
        raise DataError(where, [f"folder {raw_path} does not exist (the copy activity writes "
                                f"<folder>/{LOAD_DATE}=YYYY-MM-DD/*.parquet)"])
    try:
        sdf = rt.spark.read.parquet(raw_path)
    except Exception as e:  # noqa: BLE001 - no parquet there: say so, not a JVM trace
        raise DataError(where, [f"{raw_path} cannot be read as parquet: {_spark_reason(e)}"]) from None
    sdf, load_date = latest_load(sdf, where)
    return sdf, where + (f" ({LOAD_DATE}={load_date})" if load_date else "")


def read_source(rt: Runtime, dataset: str, raw_path: str | None = None):
    """The configured source as a Spark DataFrame, plus a name for messages. ``raw_path`` (the job
    parameter an orchestrator sets) replaces the configured source with that raw-zone folder."""
    if raw_path:
        return read_raw(rt, raw_path)
    spark = rt.spark
    cfg = rt.settings.forecast if dataset == "forecast" else rt.settings.classifier
    src = cfg.source
    if src.format in ("csv", "parquet"):
        path = src.path or ""
        if "://" not in path and not path.startswith("/Volumes") and not Path(path).exists():
            raise DataError(describe(src), [f"file {path} does not exist"])
        try:  # both readers look at the files now (schema inference, parquet footers)
            if src.format == "csv":
                return spark.read.option("header", True).option("inferSchema", True).csv(path), f"file {path}"
            sdf = spark.read.parquet(path)
        except Exception as e:  # a file Spark cannot read as this format: say which, not a JVM trace
            raise DataError(describe(src), [f"{path} cannot be read as {src.format}: {_spark_reason(e)}"]) from None
        # A raw-zone folder holds one partition per load: read the newest, not every copy at once.
        sdf, load_date = latest_load(sdf, f"file {path}")
        return sdf, f"file {path}" + (f" ({LOAD_DATE}={load_date})" if load_date else "")
    if src.format == "jdbc":
        reader = spark.read.format("jdbc").option("url", src.jdbc_url).option("dbtable", src.table)
        if src.partition_column:
            # Partitioned read: numPartitions parallel queries over ranges of partition_column.
            reader = (reader.option("partitionColumn", src.partition_column)
                      .option("lowerBound", src.lower_bound).option("upperBound", src.upper_bound)
                      .option("numPartitions", src.num_partitions))
        if src.password_secret:
            reader = reader.option("password", _secret(src.password_secret))
        return reader.load(), describe(src)
    if src.format == "synthetic":
        from .data.synthetic import sales

        size = rt.settings.forecast.synthetic
        pdf = sales(size.stores, size.items, size.days, size.seed)
        return spark.createDataFrame(pdf), f"synthetic sales ({size.stores} stores x {size.items} items x {size.days} days)"
    if src.format == "islp_default":
        from .data.islp import default_csv

        path = str(default_csv())
        return spark.read.option("header", True).option("inferSchema", True).csv(path), f"file {path}"
    raise WorkloadError(f"unknown source format {src.format!r}")


def _secret(name: str) -> str:
    import os

    try:
        from databricks.sdk.runtime import dbutils

        return dbutils.secrets.get(scope=os.environ.get("MLKIT_SECRET_SCOPE", "mlkit"), key=name)
    except Exception:  # noqa: BLE001 - off Databricks: the secret comes from the environment
        value = os.environ.get(f"MLKIT_SECRET_{name.upper().replace('-', '_')}")
        if value is None:
            raise WorkloadError(f"secret {name!r} not found (set MLKIT_SECRET_{name.upper()} locally)") from None
        return value


# --------------------------------------------------------------------------- validate + conform


def conform(sdf, spec: Spec, where: str):
    """Validate, then cast to the stored types. Raises DataError naming column, file and row."""
    from pyspark.sql import functions as F

    if not sdf.columns or sdf.limit(1).count() == 0:
        raise DataError(where, ["the source is empty (no rows)"])
    dtypes = dict(sdf.dtypes)
    present = [c for c in spec.columns if c in dtypes]
    empty = frozenset()
    if present and all(_printable(c) for c in dtypes):
        row = sdf.select(*(F.count(F.col(c)).alias(c) for c in present)).first()
        empty = frozenset(c for c in present if row[c] == 0)
    problems = check_schema(dtypes, spec, empty)
    if problems:
        # For a column that should be numeric but was read as text, show the first offending row.
        for name, kind in spec.columns.items():
            if kind == "numeric" and dtypes.get(name) == "string" and name not in empty:
                detail = _first_bad(sdf, name, "double")
                if detail:
                    problems.append(detail)
        raise DataError(where, problems)

    out = sdf.select(*spec.columns)
    for name, kind in spec.columns.items():
        if kind == "key":
            out = out.withColumn(name, F.col(name).cast("string"))
        elif kind == "numeric":
            out = out.withColumn(name, F.col(name).cast("double"))
        elif kind == "timestamp":
            parsed = F.try_to_timestamp(F.col(name).cast("string")) if dict(sdf.dtypes)[name] == "string" \
                else F.col(name).cast("timestamp")
            out = out.withColumn(name, parsed)
    for name, kind in spec.columns.items():
        if kind in ("key", "timestamp"):
            bad = out.where(F.col(name).isNull()).count()
            if bad:
                what = "empty" if kind == "key" else "empty or not a date/time"
                detail = _first_bad(sdf, name, "timestamp") if kind == "timestamp" else ""
                problems.append(f"column {name!r}: {bad} row(s) {what}" + (f"; {detail}" if detail else ""))
    if spec.keys:
        # Rows with an empty or unparseable key are reported above; as keys they would all be None
        # and show up as a spurious duplicate too.
        keyed = out.where(" AND ".join(f"`{k}` IS NOT NULL" for k in spec.keys))
        dupes = keyed.groupBy(*spec.keys).count().where("count > 1")
        n = dupes.count()
        if n:
            ex = dupes.first()
            problems.append(f"{n} duplicate ({', '.join(spec.keys)}) key(s), e.g. "
                            + ", ".join(f"{k}={ex[k]}" for k in spec.keys))
    if problems:
        raise DataError(where, problems)
    return out


def _first_bad(sdf, name: str, to: str) -> str:
    """'first bad value 'abc' at data row 17' - found by position, only on the error path."""
    from pyspark.sql import functions as F

    cast = F.try_to_timestamp(F.col(name).cast("string")) if to == "timestamp" else try_cast(name, to)
    rows = (sdf.select(name).rdd.zipWithIndex()
            .filter(lambda r: r[0][0] is not None).map(lambda r: (r[0][0], r[1])))
    bad_values = {r[0] for r in sdf.where(F.col(name).isNotNull() & cast.isNull()).select(name).limit(50).collect()}
    hit = rows.filter(lambda r: r[0] in bad_values).take(1)
    if not hit:
        return ""
    value, idx = hit[0]
    return f"column {name!r}: first bad value {value!r} at data row {idx + 1}"


def with_row_ids(df, columns: list[str]):
    """Key rows by content + occurrence: identical re-deliveries dedupe, true duplicates stay."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    h = F.sha2(F.concat_ws("\u001f", *[F.coalesce(F.col(c).cast("string"), F.lit("\u0000")) for c in columns]), 256)
    df = df.withColumn("_row_hash", h)
    n = F.row_number().over(Window.partitionBy("_row_hash").orderBy("_row_hash"))
    return df.withColumn("_row_id", F.concat_ws("#", "_row_hash", n.cast("string"))).drop("_row_hash")


def run(rt: Runtime, dataset: str, raw_path: str | None = None) -> dict:
    spec = spec_for(dataset, rt.settings)
    sdf, where = read_source(rt, dataset, raw_path)
    rt.say(f"validating {where}")
    df = conform(sdf, spec, where)
    keys = spec.keys
    if not keys:
        df, keys = with_row_ids(df, list(spec.columns)), ["_row_id"]
    rows = df.count()
    version, inserted = rt.tables.merge_new_rows(spec.table, df, keys)
    out = {"table": spec.table, "table_path": rt.tables.path(spec.table), "table_version": version,
           "rows_read": rows, "rows_inserted": inserted, "source": where}
    for k, v in out.items():
        rt.context.set(k, v)
    return out
