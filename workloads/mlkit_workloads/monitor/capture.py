"""Logged inferences from the Event Hubs Capture archive (the cloud path of the monitoring job).

Capture writes the inference-log hub's events as Avro files (``CAPTURE_SCHEMA``) under
``<namespace>/<hub>/<partition>/<yyyy>/<MM>/<dd>/<HH>/<mm>/<ss>.avro`` in the data lake's
inference-logs container. Each record's ``Body`` is one event exactly as the service's Event Hubs
sink sent it (``inference_event.to_json``), decoded here by its inverse, ``from_json``, and
laid out by the Delta sink's own ``event_table``: so the monitoring core sees the same columns
whichever way the events were logged.

Spark lists and reads the files (``binaryFile``: abfss:// on Databricks, a directory locally,
one code path) and fastavro decodes them on the workers (``mapInArrow``): Spark's own Avro reader
is a separate jar that a plain pyspark install does not have. A file that is not a readable
Capture archive stops the job with its name; nothing is written.
"""

from __future__ import annotations

import io
from typing import Any, Iterator

import pandas as pd

from ..errors import WorkloadError
from ..inference_event import event_table, from_json

# The record schema Event Hubs Capture writes (Avro encoding). The reader only relies on the field
# names (the writer schema travels inside each file); tests write archives with it.
CAPTURE_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "EventData", "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"},
        {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
        {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]}},
        {"name": "Body", "type": ["null", "bytes"]},
    ],
}
CAPTURE_FIELDS = tuple(f["name"] for f in CAPTURE_SCHEMA["fields"])
# Capture closes a file at the end of its window (at most 15 minutes), so a file modified before
# the monitoring window began cannot hold an event of it. The margin covers clock skew between
# the service (which stamps ``ts``) and storage (which stamps the file).
MODIFIED_MARGIN = pd.Timedelta(hours=1)
FILE, ERROR = "_file", "_error"


class CaptureFileError(WorkloadError):
    def __init__(self, file: str, problem: str):
        self.file, self.problem = file, problem
        super().__init__(f"{file}: {problem}")


def decode_archive(file: str, data: bytes) -> list[dict[str, Any]]:
    """The inference events in one Capture file; CaptureFileError naming the file otherwise."""
    import fastavro

    if not data:
        raise CaptureFileError(file, "empty file (0 bytes), not an Avro archive")
    try:
        reader = fastavro.reader(io.BytesIO(data))
    except Exception as e:  # fastavro raises several types for a bad header; all mean "not Avro"
        raise CaptureFileError(file, f"not an Avro container file ({type(e).__name__}: {e})") from None
    names = {f.get("name") for f in (reader.writer_schema or {}).get("fields", [])}
    missing = [f for f in CAPTURE_FIELDS if f not in names]
    if missing:
        raise CaptureFileError(file, f"not an Event Hubs Capture archive: its schema has no {', '.join(missing)}")
    events: list[dict[str, Any]] = []
    records = iter(reader)
    while True:
        try:
            record = next(records)
        except StopIteration:
            return events
        except Exception as e:  # a truncated or corrupt data block
            raise CaptureFileError(file, f"unreadable after {len(events)} event(s) "
                                         f"({type(e).__name__}: {e})") from None
        try:
            if record["Body"] is None:
                raise ValueError("the event has no body")
            events.append(from_json(record["Body"]))
        except ValueError as e:
            raise CaptureFileError(file, f"event with SequenceNumber {record['SequenceNumber']}: {e}") from None


def _schema():
    import pyarrow as pa

    return event_table([]).schema.append(pa.field(FILE, pa.string())).append(pa.field(ERROR, pa.string()))


def archive_table(file: str, data: bytes):
    """One file as Arrow rows: its events (inference-log columns), or one row naming its problem."""
    import pyarrow as pa

    schema = _schema()
    try:
        events = decode_archive(file, data)
        try:
            table = event_table(events)
        except (KeyError, TypeError, ValueError, pa.ArrowException) as e:  # e.g. a ts that is not a timestamp
            raise CaptureFileError(file, f"its events do not fit the inference log columns ({e})") from None
    except CaptureFileError as e:
        return pa.Table.from_pylist([{FILE: file, ERROR: e.problem}], schema=schema)
    return (table.append_column(FILE, pa.array([file] * table.num_rows, pa.string()))
            .append_column(ERROR, pa.nulls(table.num_rows, pa.string())))


def _decode_batches(batches: Iterator) -> Iterator:
    """mapInArrow: binaryFile rows (path, content) -> event rows; runs on the workers."""
    import pyarrow as pa

    for batch in batches:
        paths, contents = batch.column("path").to_pylist(), batch.column("content").to_pylist()
        tables = [archive_table(p, c) for p, c in zip(paths, contents)]
        if tables:
            yield from pa.concat_tables(tables).to_batches()


def _uri_key(uri: str) -> tuple[str, str, str]:
    """Spark spells one file differently in its listing (file:///x) and its rows (file:/x)."""
    from urllib.parse import unquote, urlparse

    u = urlparse(uri)
    return u.scheme, u.netloc, unquote(u.path)


def _spelled(key: tuple[str, str, str]) -> str:
    scheme, netloc, path = key
    return f"{scheme}://{netloc}{path}" if netloc else f"{scheme}:{path}"


def read_capture(spark, root: str, since: pd.Timestamp) -> pd.DataFrame:
    """Events under ``root`` in files modified since ``since`` (minus a margin), inference-log columns.

    Empty when nothing was captured yet. Raises WorkloadError (naming every bad file) before
    returning anything, so the job writes nothing from a partly readable archive.
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql.pandas.types import from_arrow_schema

    cutoff = (since - MODIFIED_MARGIN).tz_convert("UTC")
    try:
        files = (spark.read.format("binaryFile")
                 .option("recursiveFileLookup", "true")  # Capture's folders are not key=value partitions
                 .option("pathGlobFilter", "*.avro")
                 .option("modifiedAfter", cutoff.strftime("%Y-%m-%dT%H:%M:%S"))
                 .option("timeZone", "UTC")
                 .load(root))
    except AnalysisException as e:
        condition = getattr(e, "getCondition", e.getErrorClass)()
        if condition == "PATH_NOT_FOUND":
            return event_table([]).to_pandas()  # Capture has written nothing yet
        raise
    # Spark's file scan skips zero-byte files without a word; Capture never writes one (it commits
    # whole blobs), so such a file is a broken write and is reported like any unreadable archive.
    scanned = {_uri_key(r.path) for r in files.select("path").collect()}  # a listing: content is not read
    zero_byte = sorted(_spelled(k) for k in map(_uri_key, files.inputFiles()) if k not in scanned)
    # binaryFile packs files into partitions of spark.sql.files.maxPartitionBytes, so a worker holds
    # about one partition of archives (Capture files are capped by size_limit_in_bytes) at a time.
    decoded = files.select("path", "content").mapInArrow(_decode_batches, from_arrow_schema(_schema()))
    pdf = decoded.toPandas()
    bad = pdf[pdf[ERROR].notna()]
    problems = sorted([*((f, "empty file (0 bytes), not an Avro archive") for f in zero_byte),
                       *zip(bad[FILE], bad[ERROR])])
    if problems:
        lines = "\n".join(f"  - {f}: {p}" for f, p in problems)
        raise WorkloadError(f"{root}: {len(problems)} unreadable Event Hubs Capture file(s), nothing was written:\n"
                            f"{lines}")
    events = pdf.drop(columns=[FILE, ERROR])
    if len(events) and events["ts"].dt.tz is None:  # toPandas gives wall time in the session's zone
        events["ts"] = events["ts"].dt.tz_localize(spark.conf.get("spark.sql.session.timeZone"))
    return events
