"""The raw zone as Data Factory's copy activity writes it: <folder>/load_date=YYYY-MM-DD/<table>.parquet.

Ingest reads one load (each is a full copy of the source table that day): the partition the
orchestrator names in the job's raw_path parameter, or, for a scheduled or local run
(`mlkit run --data <folder>`), the newest one. Real files, real Spark, real Delta.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_workloads_spark import runtime, sales_csv, small_settings

from mlkit.local.runner import settings_for_run
from mlkit_workloads import graph, ingest
from mlkit_workloads.entrypoint import run_task, task_params
from mlkit_workloads.errors import DataError
from mlkit_workloads.runtime import TABLES
from stacks.platform.data_factory_pipeline import CopySpec

pytestmark = [pytest.mark.spark]
COPY = CopySpec("dbo.sales", "sales", "ds_sql_dbo_sales", "ds_raw_dbo_sales")


def raw_zone(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """Two weekly loads; the second has one more week of every series (the newer snapshot)."""
    whole = pd.read_csv(sales_csv(tmp_path / "sales.csv"), parse_dates=["date"])
    whole["date"] = whole["date"].dt.date  # a SQL date column: parquet DATE, as the copy writes it
    folder = tmp_path / "raw" / COPY.folder
    cut = max(whole["date"]) - pd.Timedelta(days=7)
    for load_date, rows in (("2026-11-22", whole[whole["date"] <= cut]), ("2026-11-29", whole)):
        part = folder / f"load_date={load_date}"
        part.mkdir(parents=True)
        rows.to_parquet(part / COPY.file_name, index=False)  # the file name the copy activity writes
    return folder, whole


def test_a_run_on_the_raw_folder_ingests_its_newest_load_only(spark, tmp_path):
    folder, whole = raw_zone(tmp_path)
    s = settings_for_run(small_settings(), tmp_path, folder)  # what `mlkit run --data raw/sales` does
    rt = runtime(spark, s, tmp_path / "tables")
    out = ingest.run(rt, "forecast")
    # every row of the newest snapshot once: not both loads (which would be duplicate keys)
    assert out["rows_read"] == out["rows_inserted"] == len(whole)
    assert out["source"].endswith("(load_date=2026-11-29)")
    stored = rt.tables.read_pandas(TABLES["forecast"])
    assert len(stored) == len(whole) and "load_date" not in stored.columns


def test_the_orchestrators_raw_path_goes_through_the_job_parameter(spark, tmp_path):
    folder, whole = raw_zone(tmp_path)
    s = settings_for_run(small_settings(), tmp_path)
    rt = runtime(spark, s, tmp_path / "tables")
    task = graph.FORECAST.task("ingest")
    older = folder / "load_date=2026-11-22"
    # the graph's {{job.parameters.raw_path}} resolved as Databricks does, then the entry point's own path
    first = run_task(task.entry_point, rt, task_params(task, {"raw_path": str(older)}))
    assert first["rows_inserted"] == len(pd.read_parquet(older)) < len(whole)
    assert first["source"] == f"raw folder {older}"
    newer = run_task(task.entry_point, rt, task_params(task, {"raw_path": str(folder / "load_date=2026-11-29")}))
    assert newer["rows_inserted"] == len(whole) - first["rows_inserted"]  # only the new week
    again = run_task(task.entry_point, rt, task_params(task, {"raw_path": str(folder / "load_date=2026-11-29")}))
    assert again["rows_inserted"] == 0  # a re-run of the same load adds nothing


def test_without_a_raw_path_the_configured_source_is_read(spark, tmp_path):
    csv = sales_csv(tmp_path / "sales.csv")
    rt = runtime(spark, settings_for_run(small_settings(), tmp_path, csv), tmp_path / "tables")
    task = graph.FORECAST.task("ingest")
    assert task_params(task) == {"dataset": "forecast", "raw_path": ""}  # the job parameter's default
    out = run_task(task.entry_point, rt, task_params(task))
    assert out["source"] == f"file {csv}"


def test_a_missing_raw_folder_is_a_clear_error_and_nothing_is_written(spark, tmp_path):
    rt = runtime(spark, settings_for_run(small_settings(), tmp_path), tmp_path / "tables")
    missing = tmp_path / "raw" / "sales" / "load_date=2026-12-06"
    with pytest.raises(DataError, match=r"folder .*load_date=2026-12-06 does not exist \(the copy activity writes"):
        ingest.run(rt, "forecast", raw_path=str(missing))
    assert not (tmp_path / "tables" / TABLES["forecast"]).exists()


def test_a_data_column_named_load_date_is_data_not_a_partition(spark, tmp_path):
    whole = pd.read_csv(sales_csv(tmp_path / "sales.csv"), parse_dates=["date"])
    whole["date"] = whole["date"].dt.date
    whole["load_date"] = "2026-01-01"
    whole.loc[whole.index[:10], "load_date"] = "2026-02-01"
    path = tmp_path / "flat.parquet"
    whole.to_parquet(path, index=False)
    rt = runtime(spark, settings_for_run(small_settings(), tmp_path, path), tmp_path / "tables")
    assert ingest.run(rt, "forecast")["rows_inserted"] == len(whole)
