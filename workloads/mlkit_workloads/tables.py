"""One small interface over versioned Delta tables.

Locally the tables are written with delta-rs (``deltalake``): real Delta logs with versions and
time travel, no JVM jars needed. On Databricks the same calls go through Delta on Spark. Both
stores keep the two rules that make delta-rs happy: timestamps are UTC, in microseconds.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd
import pyarrow as pa


if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class TableStore(Protocol):
    root: str

    def path(self, name: str) -> str: ...

    def version(self, name: str) -> int | None: ...

    def merge_new_rows(self, name: str, df: "DataFrame", keys: list[str]) -> tuple[int, int]:
        """Insert the rows whose keys are not in the table yet. Returns (table version, rows inserted)."""
        ...

    def append(self, name: str, pdf: pd.DataFrame) -> int: ...

    def replace_where(self, name: str, pdf: pd.DataFrame, where: dict[str, object]) -> int:
        """Replace the rows matching ``where`` (column -> value or list of values) with ``pdf``, in
        one Delta transaction: a retried task that wrote these rows before replaces them instead of
        appending a second copy. Every row of ``pdf`` must match ``where``. Returns the table version."""
        ...

    def read_spark(self, spark: "SparkSession", name: str, version: int | None = None) -> "DataFrame": ...

    def read_pandas(self, name: str, version: int | None = None) -> pd.DataFrame: ...


def to_arrow(pdf: pd.DataFrame) -> pa.Table:
    """pandas -> Arrow with the timestamp rules delta-rs needs (UTC, microseconds)."""
    table = pa.Table.from_pandas(pdf, preserve_index=False)
    fields = []
    for f in table.schema:
        if pa.types.is_timestamp(f.type):
            f = f.with_type(pa.timestamp("us", tz=f.type.tz or "UTC"))
        elif pa.types.is_null(f.type):  # an all-None column: delta has no null type
            f = f.with_type(pa.string())
        fields.append(f)
    schema = pa.schema(fields)
    cols = []
    for col, f in zip(table.columns, schema):
        if pa.types.is_timestamp(f.type) and col.type.tz is None:
            col = col.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))  # naive means UTC here
        cols.append(col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def where_predicate(where: dict[str, object], pdf: pd.DataFrame | None = None) -> str:
    """A SQL predicate for ``replace_where`` (the same text delta-rs and Delta on Spark accept);
    checks that every row of ``pdf`` falls inside it, so a replace can never drop rows it did not mean to."""
    if not where:
        raise ValueError("replace_where needs at least one column to scope the replaced rows")

    def literal(v: object) -> str:
        if isinstance(v, bool) or v is None:
            raise ValueError(f"replace_where: unsupported scope value {v!r}")
        if isinstance(v, (int, float)):
            return repr(v)
        return "'" + str(v).replace("'", "''") + "'"

    parts = []
    for col, value in where.items():
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if not values:
            raise ValueError(f"replace_where: empty value list for {col!r}")
        if pdf is not None:
            if col not in pdf.columns:
                raise ValueError(f"replace_where: scope column {col!r} is not in the data")
            outside = ~pdf[col].isin(values)
            if outside.any():
                raise ValueError(f"replace_where: {int(outside.sum())} row(s) have {col} outside {values!r}")
        parts.append(f"`{col}` = {literal(values[0])}" if len(values) == 1
                     else f"`{col}` IN ({', '.join(literal(v) for v in values)})")
    return " AND ".join(parts)


# Rows per Parquet row group in the files delta-rs writes. Spark splits a file for parallel reads
# only between row groups (a row group goes to the split holding its middle byte); delta-rs's
# default (~1M rows) left a 1.5M-row table in 2 row groups, readable by at most 2 tasks and
# usually one. 128k rows keeps row groups large enough for Parquet (a few hundred kB compressed).
ROW_GROUP_ROWS = 128 * 1024


def _writer_properties():
    from deltalake import WriterProperties

    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS)


@contextmanager
def spark_stream(df, staging: Path):
    """A Spark DataFrame as a stream of Arrow batches, never all in one process: Spark writes it as
    Parquet from its tasks (microsecond UTC timestamps, what delta-rs wants), the stream reads the
    files back a batch at a time. ``toArrow()`` would collect every row into the driver first (40M
    rows are ~2 GB of Arrow, twice over in the JVM). The staged files are removed afterwards."""
    import shutil
    import uuid

    import pyarrow.dataset as pads

    where = staging / uuid.uuid4().hex
    conf, key = df.sparkSession.conf, "spark.sql.parquet.outputTimestampType"
    before = conf.get(key, None)
    conf.set(key, "TIMESTAMP_MICROS")
    try:
        df.write.parquet(str(where))
        conf.unset(key) if before is None else conf.set(key, before)
        yield pads.dataset(str(where), format="parquet").scanner(batch_size=ROW_GROUP_ROWS).to_reader()
    finally:
        shutil.rmtree(where, ignore_errors=True)


class DeltaRsStore:
    """Delta tables in a local directory, written by delta-rs and read by Spark through file lists."""

    def __init__(self, root: str | Path):
        self.root = str(Path(root).resolve())

    def path(self, name: str) -> str:
        return str(Path(self.root) / name)

    def _table(self, name: str, version: int | None = None):
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(self.path(name)):
            raise FileNotFoundError(f"no Delta table {name!r} under {self.root}")
        return DeltaTable(self.path(name), version=version)

    def version(self, name: str) -> int | None:
        from deltalake import DeltaTable

        return DeltaTable(self.path(name)).version() if DeltaTable.is_deltatable(self.path(name)) else None

    def merge_new_rows(self, name: str, df, keys: list[str]) -> tuple[int, int]:
        if isinstance(df, pa.Table):
            return self._merge(name, df, keys)
        with spark_stream(df, Path(self.root) / "_staging") as data:
            return self._merge(name, data, keys)

    def _merge(self, name: str, data, keys: list[str]) -> tuple[int, int]:
        from deltalake import DeltaTable, write_deltalake

        if not DeltaTable.is_deltatable(self.path(name)):
            write_deltalake(self.path(name), data, mode="append", writer_properties=_writer_properties())
            return self.version(name), DeltaTable(self.path(name)).to_pyarrow_dataset().count_rows()  # type: ignore[return-value]
        # An insert-only MERGE commits nothing when every key is already there: re-runs are no-ops.
        predicate = " AND ".join(f"s.`{k}` = t.`{k}`" for k in keys)
        metrics = (DeltaTable(self.path(name))
                   .merge(data, predicate=predicate, source_alias="s", target_alias="t",
                          writer_properties=_writer_properties())
                   .when_not_matched_insert_all().execute())
        return self.version(name), int(metrics["num_target_rows_inserted"])  # type: ignore[return-value]

    def append(self, name: str, pdf: pd.DataFrame) -> int:
        from deltalake import write_deltalake

        write_deltalake(self.path(name), to_arrow(pdf), mode="append", schema_mode="merge",
                        writer_properties=_writer_properties())
        return self.version(name)  # type: ignore[return-value]

    def replace_where(self, name: str, pdf: pd.DataFrame, where: dict[str, object]) -> int:
        from deltalake import DeltaTable, write_deltalake

        predicate = where_predicate(where, pdf)
        if not DeltaTable.is_deltatable(self.path(name)):
            return self.append(name, pdf)
        # delta-rs: overwrite with a predicate deletes the matching rows and adds the new ones in one commit.
        # schema_mode="merge" as in append: new columns (a newer job version's) join the table.
        write_deltalake(self.path(name), to_arrow(pdf), mode="overwrite", predicate=predicate.replace("`", ""),
                        schema_mode="merge", writer_properties=_writer_properties())
        return self.version(name)  # type: ignore[return-value]

    def read_spark(self, spark, name: str, version: int | None = None):
        return spark.read.parquet(*self._table(name, version).file_uris())

    def read_pandas(self, name: str, version: int | None = None) -> pd.DataFrame:
        return self._table(name, version).to_pandas()


class SparkDeltaStore:
    """Delta on Spark (Databricks runtime, delta-spark). Not runnable here: Delta jars need Maven."""

    def __init__(self, spark, root: str):
        self.spark = spark
        self.root = root.rstrip("/")

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _delta(self, name: str):
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.path(name))

    def version(self, name: str) -> int | None:
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(self.spark, self.path(name)):
            return None
        return int(self._delta(name).history(1).collect()[0]["version"])

    def merge_new_rows(self, name: str, df, keys: list[str]) -> tuple[int, int]:
        if self.version(name) is None:
            df.write.format("delta").save(self.path(name))
            return self.version(name), df.count()  # type: ignore[return-value]
        before = self.version(name)
        cond = " AND ".join(f"s.`{k}` = t.`{k}`" for k in keys)
        self._delta(name).alias("t").merge(df.alias("s"), cond).whenNotMatchedInsertAll().execute()
        after = self.version(name)
        if after == before:
            return after, 0  # type: ignore[return-value]
        metrics = self._delta(name).history(1).collect()[0]["operationMetrics"] or {}
        return after, int(metrics.get("numTargetRowsInserted", 0))  # type: ignore[return-value]

    def append(self, name: str, pdf: pd.DataFrame) -> int:
        sdf = self.spark.createDataFrame(pdf)
        sdf.write.format("delta").mode("append").option("mergeSchema", "true").save(self.path(name))
        return self.version(name)  # type: ignore[return-value]

    def replace_where(self, name: str, pdf: pd.DataFrame, where: dict[str, object]) -> int:
        predicate = where_predicate(where, pdf)
        if self.version(name) is None:
            return self.append(name, pdf)
        sdf = self.spark.createDataFrame(pdf)
        (sdf.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
         .option("mergeSchema", "true").save(self.path(name)))
        return self.version(name)  # type: ignore[return-value]

    def read_spark(self, spark, name: str, version: int | None = None):
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(name))

    def read_pandas(self, name: str, version: int | None = None) -> pd.DataFrame:
        return self.read_spark(self.spark, name, version).toPandas()
