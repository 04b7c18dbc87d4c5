"""The export's pure core: the table's shape, the rows to write and the SQL that writes them.

Idempotent by construction: the table keys on (group keys, date, model name, model version); a
batch is loaded into a staging relation and, in one transaction, the target's rows of the same
model version and date range that the batch no longer has are deleted and the batch is MERGEd in
(matched rows updated, new ones inserted). A re-run of a version replaces its rows; nothing is
ever appended twice. PostgreSQL 15 has MERGE but not ``WHEN NOT MATCHED BY SOURCE`` (17), hence
the DELETE before it. Drivers (psycopg locally, Spark JDBC on Databricks) only run these texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import DataError

if TYPE_CHECKING:  # the stacks import this module at synth: pandas only where rows are shaped
    import pandas as pd
    from ..settings import WorkloadSettings

# Columns every batch carries after the group keys and the date, in table order, with their types.
VALUE_COLUMNS = (("step", "integer"), ("prediction", "double precision"))
META_COLUMNS = (("model_type", "text"), ("model_name", "text NOT NULL"), ("model_version", "integer NOT NULL"),
                ("data_table_version", "bigint"), ("run_id", "text"), ("trained_through", "timestamptz"),
                ("scored_at", "timestamptz"))
EXPORTED_AT = "exported_at"  # set by the database in the transaction that writes the row
# Staging for drivers that cannot load a temporary table in the transaction's own session (Spark
# JDBC writes from executors): a permanent table with the batch id, emptied by the merge.
BATCH_ID = "batch_id"


def quote(name: str) -> str:
    """A PostgreSQL identifier, quoted (group keys come from the column mapping: any text)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableSpec:
    schema: str
    table: str
    view: str
    keys: tuple[str, ...]
    timestamp: str
    bands: tuple[str, ...] = ()  # interval columns, e.g. lo_80, hi_80, lo_95, hi_95

    @property
    def target(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"

    @property
    def staging(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table + '_staging')}"

    @property
    def view_name(self) -> str:
        return f"{quote(self.schema)}.{quote(self.view)}"

    @property
    def key_columns(self) -> tuple[str, ...]:
        return (*self.keys, self.timestamp, "model_name", "model_version")

    def columns(self) -> list[tuple[str, str]]:
        """(name, type) of every column a batch writes, in order."""
        return [*((k, "text NOT NULL") for k in self.keys), (self.timestamp, "date NOT NULL"), *VALUE_COLUMNS,
                *((b, "double precision") for b in self.bands), *META_COLUMNS]

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns()]


# --------------------------------------------------------------------------- DDL


def create_schema(spec: TableSpec) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {quote(spec.schema)}"


def create_table(spec: TableSpec) -> str:
    cols = [f"{quote(c)} {t}" for c, t in spec.columns()]
    cols.append(f"{quote(EXPORTED_AT)} timestamptz NOT NULL DEFAULT now()")
    pk = ", ".join(quote(c) for c in spec.key_columns)
    return f"CREATE TABLE IF NOT EXISTS {spec.target} (\n  " + ",\n  ".join(cols) + f",\n  PRIMARY KEY ({pk})\n)"


def create_staging_table(spec: TableSpec) -> str:
    cols = [f"{quote(BATCH_ID)} text NOT NULL", *(f"{quote(c)} {t.replace(' NOT NULL', '')}" for c, t in spec.columns())]
    return f"CREATE TABLE IF NOT EXISTS {spec.staging} (\n  " + ",\n  ".join(cols) + "\n)"


def create_view(spec: TableSpec) -> str:
    """The latest champion's predictions per group: per model name, the rows of the version whose
    batch was exported last (every export is of the champion; a rollback's re-export wins too)."""
    cols = ", ".join(f"t.{quote(c)}" for c in [*spec.names, EXPORTED_AT])
    return (f"CREATE OR REPLACE VIEW {spec.view_name} AS\n"
            f"WITH latest AS (\n"
            f"  SELECT DISTINCT ON (model_name) model_name, model_version FROM {spec.target}\n"
            f"  ORDER BY model_name, {quote(EXPORTED_AT)} DESC, model_version DESC\n"
            f")\n"
            f"SELECT {cols} FROM {spec.target} t\n"
            f"JOIN latest l ON l.model_name = t.model_name AND l.model_version = t.model_version")


def temporary_stage(spec: TableSpec, name: str = "mlkit_export_stage") -> str:
    """A session-private stage that goes with the transaction (drivers that load it in the same session)."""
    cols = ", ".join(f"{quote(c)} {t.replace(' NOT NULL', '')}" for c, t in spec.columns())
    return f"CREATE TEMPORARY TABLE {quote(name)} ({cols}) ON COMMIT DROP"


# --------------------------------------------------------------------------- the write


def _match(spec: TableSpec, left: str = "s", right: str = "t") -> str:
    return " AND ".join(f"{left}.{quote(c)} = {right}.{quote(c)}" for c in spec.key_columns)


def delete_replaced(spec: TableSpec, source: str, mark: str = "%s") -> str:
    """Rows of this model version in the batch's date range that the batch does not have any more
    (a group dropped on a re-run). Parameters: model name, model version, first date, last date."""
    return (f"DELETE FROM {spec.target} t WHERE t.model_name = {mark} AND t.model_version = {mark} "
            f"AND t.{quote(spec.timestamp)} BETWEEN {mark} AND {mark} "
            f"AND NOT EXISTS (SELECT 1 FROM {source} s WHERE {_match(spec)})")


def count_matched(spec: TableSpec, source: str) -> str:
    """How many of the batch's rows are already in the target (the MERGE will update them)."""
    return f"SELECT count(*) FROM {source} s JOIN {spec.target} t ON {_match(spec)}"


def merge(spec: TableSpec, source: str) -> str:
    names = spec.names
    updates = [f"{quote(c)} = s.{quote(c)}" for c in names if c not in spec.key_columns]
    updates.append(f"{quote(EXPORTED_AT)} = now()")
    cols = ", ".join(quote(c) for c in names)
    values = ", ".join(f"s.{quote(c)}" for c in names)
    return (f"MERGE INTO {spec.target} t USING {source} s ON {_match(spec)}\n"
            f"WHEN MATCHED THEN UPDATE SET {', '.join(updates)}\n"
            f"WHEN NOT MATCHED THEN INSERT ({cols}, {quote(EXPORTED_AT)}) VALUES ({values}, now())")


def batch_source(spec: TableSpec, mark: str = "%s") -> str:
    """The permanent staging table's rows of one batch, as a MERGE source (parameter: the batch id)."""
    cols = ", ".join(quote(c) for c in spec.names)
    return f"(SELECT {cols} FROM {spec.staging} WHERE {quote(BATCH_ID)} = {mark})"


def clear_batch(spec: TableSpec, mark: str = "%s") -> str:
    return f"DELETE FROM {spec.staging} WHERE {quote(BATCH_ID)} = {mark}"


def table_columns_query(mark: str = "%s") -> str:
    return (f"SELECT column_name FROM information_schema.columns WHERE table_schema = {mark} AND table_name = {mark} "
            "ORDER BY ordinal_position")


def missing_columns(spec: TableSpec, present: list[str]) -> list[str]:
    """The batch's columns an existing table lacks (its group keys or intervals changed): the export
    then stops naming them rather than write a partial row."""
    have = set(present)
    return [c for c in [*spec.names, EXPORTED_AT] if c not in have]


# --------------------------------------------------------------------------- the rows


def table_spec(settings: "WorkloadSettings", bands: tuple[str, ...] | None = None) -> TableSpec:
    """The table of an environment's settings. ``bands``: the interval columns of a batch (by default
    those the configured levels give, as the forecasters name them: lo_80, hi_80, ...)."""
    cfg, cols = settings.export, settings.forecast.columns
    if bands is None:
        bands = tuple(f"{side}_{lv}" for lv in settings.forecast.levels for side in ("lo", "hi"))
    return TableSpec(cfg.db_schema, cfg.table, cfg.view, tuple(cols.group_keys), cols.timestamp, bands)


def export_frame(predictions: "pd.DataFrame", spec: TableSpec, run_id: str) -> "pd.DataFrame":
    """The batch in the table's columns and types. Raises DataError naming the rows a MERGE could
    not take (an empty key, or the same key twice: MERGE would refuse to touch a row twice)."""
    import pandas as pd

    missing = [c for c in spec.names if c not in predictions.columns and c not in ("run_id", *spec.bands)]
    if missing:
        raise DataError("predictions", [f"column {c!r} is missing from the predictions" for c in missing])
    out = pd.DataFrame({k: predictions[k].astype("string") for k in spec.keys})
    out[spec.timestamp] = pd.to_datetime(predictions[spec.timestamp], utc=True).dt.date
    out["step"] = pd.to_numeric(predictions["step"]).astype("Int64")
    out["prediction"] = pd.to_numeric(predictions["prediction"]).astype(float)
    for b in spec.bands:
        out[b] = pd.to_numeric(predictions[b]).astype(float) if b in predictions else float("nan")
    out["model_type"] = predictions["model_type"].astype("string")
    out["model_name"] = predictions["model_name"].astype("string")
    out["model_version"] = pd.to_numeric(predictions["model_version"]).astype("Int64")
    out["data_table_version"] = pd.to_numeric(predictions["data_table_version"]).astype("Int64")
    out["run_id"] = run_id
    for c in ("trained_through", "scored_at"):
        out[c] = pd.to_datetime(predictions[c], utc=True)
    problems = []
    empty = out[list(spec.key_columns)].isna().any(axis=1)
    if empty.any():
        first = out[empty].iloc[0]
        problems.append(f"{int(empty.sum())} row(s) have an empty key; first: "
                        + ", ".join(f"{k}={first[k]}" for k in spec.key_columns))
    dup = out.duplicated(list(spec.key_columns), keep=False)
    if dup.any():
        first = out[dup].iloc[0]
        problems.append(f"{int(dup.sum())} row(s) share a key; first: "
                        + ", ".join(f"{k}={first[k]}" for k in spec.key_columns))
    if problems:
        raise DataError("predictions to export", problems)
    return out[spec.names].reset_index(drop=True)


def scope(frame: "pd.DataFrame", spec: TableSpec) -> tuple[str, int, object, object]:
    """(model name, model version, first date, last date) of a batch: what a re-run replaces."""
    names, versions = frame["model_name"].unique(), frame["model_version"].unique()
    if len(names) != 1 or len(versions) != 1:
        raise DataError("predictions to export", [f"a batch is one model version; got {sorted(map(str, names))} "
                                                  f"versions {sorted(map(int, versions))}"])
    return str(names[0]), int(versions[0]), frame[spec.timestamp].min(), frame[spec.timestamp].max()
