"""replace_where: a retried task replaces the rows it wrote, in one Delta commit, and never more."""

import pandas as pd
import pytest

from mlkit_workloads.tables import DeltaRsStore, where_predicate


def _rows(version: int, value: float) -> pd.DataFrame:
    return pd.DataFrame({"model_version": [version, version], "group": ["a", "b"], "y": [value, value]})


def test_a_retry_replaces_its_own_rows_and_keeps_the_others(tmp_path):
    store = DeltaRsStore(tmp_path)
    store.replace_where("p", _rows(1, 1.0), {"model_version": 1})
    store.replace_where("p", _rows(2, 2.0), {"model_version": 2})
    before = store.version("p")
    store.replace_where("p", _rows(1, 9.0), {"model_version": 1})
    table = store.read_pandas("p").sort_values(["model_version", "group"])
    assert len(table) == 4
    assert table[table.model_version == 1].y.tolist() == [9.0, 9.0]
    assert table[table.model_version == 2].y.tolist() == [2.0, 2.0]
    assert store.version("p") == before + 1  # one transaction


def test_rows_outside_the_scope_are_refused_before_anything_is_written(tmp_path):
    store = DeltaRsStore(tmp_path)
    store.replace_where("p", _rows(1, 1.0), {"model_version": 1})
    with pytest.raises(ValueError, match="outside"):
        store.replace_where("p", pd.concat([_rows(1, 5.0), _rows(2, 5.0)]), {"model_version": 1})
    assert store.read_pandas("p").y.tolist() == [1.0, 1.0]


def test_predicate_quotes_strings_and_lists():
    assert where_predicate({"run_id": "a'b"}) == "`run_id` = 'a''b'"
    assert where_predicate({"v": [1, 2], "d": "2024-01-01"}) == "`v` IN (1, 2) AND `d` = '2024-01-01'"
    with pytest.raises(ValueError):
        where_predicate({})
