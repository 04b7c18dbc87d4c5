"""Odd files given to `--data`: format by content or extension, never binary echoed, one accurate reason each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_workloads_spark import runtime, sales_csv, small_settings

from mlkit.local.runner import data_format, settings_for_run
from mlkit_workloads import ingest
from mlkit_workloads.errors import DataError
from mlkit_workloads.runtime import TABLES


def _ingest(spark, tmp_path, data):
    s = settings_for_run(small_settings(), tmp_path, data)
    rt = runtime(spark, s, tmp_path / "tables")
    return rt, lambda: ingest.run(rt, "forecast")


def test_format_by_extension_or_content(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    (tmp_path / "csvs").mkdir()
    df.to_csv(tmp_path / "csvs" / "part-1.csv", index=False)
    df.to_csv(tmp_path / "csvs" / "part-2.csv", index=False)
    (tmp_path / "csvs" / "_SUCCESS").touch()
    (tmp_path / "pq").mkdir()
    df.to_parquet(tmp_path / "pq" / "part-0")  # no extension: known by its PAR1 magic
    df.to_parquet(tmp_path / "sales.data")
    df.to_csv(tmp_path / "sales.dat", index=False)
    assert [data_format(tmp_path / p) for p in ("csvs", "pq", "sales.data", "sales.dat")] == \
        ["csv", "parquet", "parquet", "csv"]
    (tmp_path / "mixed").mkdir()
    df.to_csv(tmp_path / "mixed" / "a.csv", index=False)
    df.to_parquet(tmp_path / "mixed" / "b.parquet")
    with pytest.raises(ValueError, match=r"mixed: the directory mixes formats \(csv: a.csv; parquet: b.parquet\)"):
        data_format(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="the directory has no data files"):
        data_format(tmp_path / "empty")


def test_a_directory_of_csv_files_is_ingested(spark, tmp_path):
    whole = pd.read_csv(sales_csv(tmp_path / "sales.csv"))
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, (store, rows) in enumerate(whole.groupby("store")):
        rows.to_csv(parts / f"part-{i}.csv", index=False)
    rt, run = _ingest(spark, tmp_path, parts)
    out = run()
    assert out["rows_inserted"] == len(whole) and rt.tables.version(TABLES["forecast"]) == 0


def test_a_binary_file_is_one_problem_and_its_bytes_are_not_echoed(spark, tmp_path):
    blob = tmp_path / "sales.bin"
    blob.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    rt, run = _ingest(spark, tmp_path, blob)
    with pytest.raises(DataError) as e:
        run()
    assert e.value.problems == ["the header row is not text (is this a binary file? give CSV with a header row, "
                                "or parquet)"]
    assert all(ch.isprintable() or ch == "\n" for ch in str(e.value))  # nothing of the file echoed
    assert rt.tables.version(TABLES["forecast"]) is None


def test_an_unparseable_date_is_one_reason_not_also_a_duplicate(spark, tmp_path):
    csv = sales_csv(tmp_path / "sales.csv")
    df = pd.read_csv(csv)
    df.loc[[3, 4], "date"] = ["yesterday", "someday"]  # two bad dates in one group: both None as timestamps
    df.to_csv(csv, index=False)
    _, run = _ingest(spark, tmp_path, csv)
    with pytest.raises(DataError) as e:
        run()
    assert len(e.value.problems) == 1 and "column 'date': 2 row(s) empty or not a date" in e.value.problems[0]
    assert "duplicate" not in str(e.value)


def test_an_all_empty_target_says_so_and_lists_no_empty_bullet(spark, tmp_path):
    csv = sales_csv(tmp_path / "sales.csv")
    pd.read_csv(csv).assign(sales=np.nan).to_csv(csv, index=False)
    _, run = _ingest(spark, tmp_path, csv)
    with pytest.raises(DataError) as e:
        run()
    assert e.value.problems == ["column 'sales' has no values (every row is empty)"]


def test_missing_columns_list_the_columns_present_once(spark, tmp_path):
    csv = sales_csv(tmp_path / "sales.csv")
    pd.read_csv(csv).drop(columns=["promo", "holiday"]).to_csv(csv, index=False)
    _, run = _ingest(spark, tmp_path, csv)
    with pytest.raises(DataError) as e:
        run()
    assert e.value.problems == ["column 'promo' is missing", "column 'holiday' is missing",
                                "columns present: store, item, date, sales"]
