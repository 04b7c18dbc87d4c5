"""Pure-pandas units: metrics, gates, per-group statuses, meta model routing + LRU (calendar boosters)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomllib
from mlkit_workloads.entrypoint import TASKS, task_key, task_params
from mlkit_workloads.forecast.features import make_features
from mlkit_workloads.forecast.frequency import plan
from mlkit_workloads.forecast.meta_model import CODEC, GroupModels, UnknownGroup, compress, write_bundle
from mlkit_workloads.forecast.metrics import mae, rmse, wape
from mlkit_workloads.forecast.train import train_group
from mlkit_workloads.gates import classifier_gates, forecast_gates
from mlkit_workloads.graph import JOBS
from mlkit_workloads.ingest import check_schema, spec_for
from mlkit_workloads.settings import ClassifierGates, Forecast, ForecastGates, WorkloadSettings

ROOT = Path(__file__).resolve().parents[1]


def series(days: int, seed: int = 0, store: str = "S1", item: str = "I1") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=days, freq="D", tz="UTC")
    promo = (rng.random(days) < 0.1).astype(int)
    y = 20 + 8 * (dates.dayofweek >= 5) + 10 * promo + rng.normal(0, 1, days)
    return pd.DataFrame({"store": store, "item": item, "date": dates, "sales": y, "promo": promo, "holiday": 0})


SMALL = Forecast.model_validate({"horizon": 7, "backtest_windows": 2, "min_train_periods": 28,
                                 "models": ["auto_theta", "xgboost"], "search": {"max_rounds": 20}})
SMALL_PLAN = plan(SMALL, "D")


# ------------------------------------------------------------------ metrics


def test_metrics_known_values():
    y, p = np.array([10.0, 20.0, 30.0]), np.array([12.0, 18.0, 30.0])
    assert mae(y, p) == pytest.approx(4 / 3)
    assert rmse(y, p) == pytest.approx(np.sqrt(8 / 3))
    assert wape(y, p) == pytest.approx(4 / 60)
    assert np.isnan(wape(np.zeros(3), p))  # undefined, not infinite or zero


# ------------------------------------------------------------------ per-group training statuses


def test_train_group_statuses():
    ok = train_group(series(120), SMALL, SMALL_PLAN)
    assert ok.status == "ok" and ok.model and ok.metrics["wape"] < ok.metrics["baseline_wape"]
    short = train_group(series(30), SMALL, SMALL_PLAN)
    assert (short.status, short.reason) == ("skipped", "too few periods (30 < 42: 2 backtest windows of 7 + 28 to "
                                                       "train on)")
    const = series(120).assign(sales=5.0)
    assert train_group(const, SMALL, SMALL_PLAN).status == "skipped"
    holes = series(120)
    holes.loc[holes.index[::2], "sales"] = np.nan
    bad = train_group(holes, SMALL, SMALL_PLAN)
    assert bad.status == "skipped" and "missing" in bad.reason
    broken = series(120).assign(date="not a date")  # an error inside training becomes a status, not a crash
    res = train_group(broken, SMALL, SMALL_PLAN)
    assert res.status == "failed" and res.reason.startswith(("ValueError", "DateParseError"))


# ------------------------------------------------------------------ gates


def groups_frame(wapes, baselines, statuses=None) -> pd.DataFrame:
    n = len(wapes)
    return pd.DataFrame({"store": [f"S{i}" for i in range(n)], "item": "I", "status": statuses or ["ok"] * n,
                         "wape": wapes, "baseline_wape": baselines})


def test_forecast_gates_pass_and_each_failure():
    gates = ForecastGates(min_share_ok=0.5, max_median_wape=0.3, max_worse_than_baseline=0.1)
    keys = ["store", "item"]
    assert forecast_gates(groups_frame([0.1, 0.2], [0.2, 0.3]), gates, keys).passed
    d = forecast_gates(groups_frame([0.1, np.nan, np.nan], [0.2, np.nan, np.nan], ["ok", "skipped", "failed"]), gates, keys)
    assert not d.passed and d.failures[0].startswith("FAIL: share of groups ok 0.33")
    d = forecast_gates(groups_frame([0.5, 0.6], [0.7, 0.8]), gates, keys)
    assert [f.split(":")[1].strip() for f in d.failures] == ["median WAPE 0.550 (max 0.300)"]
    d = forecast_gates(groups_frame([0.1, 0.25], [0.2, 0.2]), gates, keys)  # 0.25 > 0.2 * 1.1
    assert not d.passed and "S1/I (0.250 vs 0.200)" in d.failures[0]
    assert not forecast_gates(groups_frame([], []), gates, keys).passed
    beat = groups_frame([0.1, 0.2, 0.2], [0.2, 0.2, 0.2]).assign(model_type=["auto_ets", "seasonal_naive", "seasonal_naive"])
    d = forecast_gates(beat, gates, keys)
    assert d.failures == ["FAIL: share of trained groups beating the seasonal naive in the backtest 0.33 (min 0.50)"]


def test_classifier_gates():
    gates = ClassifierGates(min_roc_auc=0.8, min_kappa=0.3, min_f1=0.2)
    good = {"test_roc_auc": 0.9, "test_kappa": 0.4, "test_f1": 0.5}
    assert classifier_gates(good, gates).passed
    d = classifier_gates({**good, "test_kappa": 0.1}, gates)
    assert not d.passed and d.failures == ["FAIL: test kappa 0.100 (min 0.300)"]
    assert not classifier_gates({}, gates).passed  # missing metrics never pass


# ------------------------------------------------------------------ meta model


@dataclass
class Calendar:
    """A calendar booster (what bundles of earlier versions hold, and the serving tests use)."""

    model: bytes
    status: str = "ok"
    metrics: dict = field(default_factory=lambda: {"wape": 0.1})


@pytest.fixture(scope="module")
def trained() -> dict:
    import xgboost as xgb

    out = {}
    for i in range(4):
        df = series(80, seed=i)
        b = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(make_features(df, "date", ["promo", "holiday"]),
                                                                    label=df.sales * (i + 1)), 10)
        out[(f"S{i}", "I1")] = Calendar(bytes(b.save_raw("ubj")))
    return out


SPEC = {"keys": ["store", "item"], "timestamp": "date", "features": ["promo", "holiday"], "lru_max_models": 2}


def write(d: Path, trained: dict, layout: str) -> Path:
    if layout == "files":  # one file per group (what the serving tests and older bundles use)
        write_bundle(d, SPEC, ((k, r.model, {"status": r.status, "metrics": r.metrics}) for k, r in trained.items()))
    else:  # what train_many writes: one packed file, boosters compressed on the workers
        write_bundle(d, SPEC, ((k, compress(r.model), {"status": r.status, "metrics": r.metrics, "bytes": len(r.model)})
                               for k, r in trained.items()), packed=True, codec=CODEC)
    return d


@pytest.fixture(scope="module", params=["files", "packed"])
def bundle(request, trained, tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp(f"bundle-{request.param}"), trained, request.param)


def test_packed_bundle_is_one_file_and_predicts_like_the_files_layout(trained, tmp_path):
    files, packed = write(tmp_path / "f", trained, "files"), write(tmp_path / "p", trained, "packed")
    assert sorted(p.name for p in packed.iterdir()) == ["index.json", "models.bin"]
    assert (packed / "models.bin").stat().st_size < 0.6 * sum(len(r.model) for r in trained.values())  # compressed
    a, b = GroupModels(files), GroupModels(packed)
    x = series(30, seed=9)
    for key in trained:
        np.testing.assert_array_equal(a.predict_group(key, x), b.predict_group(key, x))
        assert b.group_info(key) == a.group_info(key)  # same info; where the bytes live is not part of it
        assert b.group_info(key)["bytes"] == len(trained[key].model)  # raw size: what the LRU bound counts
    with pytest.raises(ValueError):
        write_bundle(tmp_path / "x", SPEC, [], codec="lzma")


def _reference_features(df: pd.DataFrame, ts: str, features: list[str]) -> pd.DataFrame:
    """The pandas .dt formulation the fast numpy path replaced: both must agree exactly."""
    t = pd.to_datetime(df[ts], utc=True)
    out = pd.DataFrame({"dow": t.dt.dayofweek.to_numpy(), "dom": t.dt.day.to_numpy(), "doy": t.dt.dayofyear.to_numpy(),
                        "month": t.dt.month.to_numpy(),
                        "t": ((t - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds() / 86400.0).to_numpy()})
    for f in features:
        out[f] = pd.to_numeric(df[f], errors="coerce").astype(float).to_numpy()
    return out.astype(np.float32)


@pytest.mark.parametrize("stamps", [
    pd.Series(pd.date_range("1999-12-25", periods=800, freq="D", tz="UTC")),  # leap years, year ends
    pd.Series(pd.date_range("2024-03-30 13:00", periods=300, freq="7h", tz="Europe/Berlin")),  # DST, not UTC
    pd.Series(pd.date_range("2024-01-01", periods=50, freq="D")).astype("datetime64[us]"),  # naive = UTC, us
    pd.Series(pd.date_range("2024-02-27", periods=5, freq="D").strftime("%Y-%m-%d")),  # strings
    pd.Series([pd.Timestamp("2024-03-01", tz="UTC"), pd.NaT, pd.Timestamp("2024-03-03", tz="UTC")]),
])
def test_make_features_matches_the_pandas_calendar(stamps):
    df = pd.DataFrame({"date": stamps, "promo": np.arange(len(stamps)) % 2, "holiday": "1"})
    pd.testing.assert_frame_equal(make_features(df, "date", ["promo", "holiday"]),
                                  _reference_features(df, "date", ["promo", "holiday"]), check_exact=True)


def test_meta_model_routes_each_row_to_its_group(bundle):
    m = GroupModels(bundle)
    assert sorted(m.groups()) == [(f"S{i}", "I1") for i in range(4)]
    df = pd.concat([series(5, store="S2"), series(5, store="S0"), series(3, store="S9")], ignore_index=True)
    out = m.predict(df)
    assert out.prediction.iloc[:10].notna().all() and out.prediction.iloc[10:].isna().all()  # S9 has no model
    np.testing.assert_allclose(out.prediction.iloc[:5], m.predict_group(("S2", "I1"), df.iloc[:5]), rtol=1e-6)
    # Different groups, different boosters: same inputs give different predictions.
    assert not np.allclose(m.predict_group(("S0", "I1"), df.iloc[:5]), m.predict_group(("S2", "I1"), df.iloc[:5]))
    assert m.group_info(["S1", "I1"])["status"] == "ok" and "wape" in m.group_info(("S1", "I1"))["metrics"]
    with pytest.raises(UnknownGroup):
        m.group_info(("nope", "I1"))


def test_meta_model_lru_is_bounded_by_count_and_bytes(bundle):
    m = GroupModels(bundle)  # max 2 models, from the spec
    x = series(3)
    for i in (0, 1, 2, 0, 3):
        m.predict_group((f"S{i}", "I1"), x)
    info = m.cache_info()
    assert info["loaded"] == 2 and info["evictions"] == 3 and info["misses"] == 5 and info["hits"] == 0
    m.predict_group(("S3", "I1"), x)
    assert m.cache_info()["hits"] == 1
    sizes = json.loads((bundle / "index.json").read_text())["groups"]
    smallest = min(g["bytes"] for g in sizes.values())
    tight = GroupModels(bundle, max_models=100, max_bytes=smallest)
    for i in range(4):
        tight.predict_group((f"S{i}", "I1"), x)
    assert tight.cache_info()["loaded"] == 1 and tight.cache_info()["bytes"] <= max(g["bytes"] for g in sizes.values())


# ------------------------------------------------------------------ ingest schema check (pure part)


def test_check_schema_names_missing_and_mistyped_columns():
    spec = spec_for("forecast", WorkloadSettings())
    dtypes = {"store": "string", "item": "string", "Date": "date", "sales": "string", "promo": "int", "holiday": "int"}
    problems = check_schema(dtypes, spec)
    assert any("'date' is missing (found 'Date'" in p for p in problems)
    assert "column 'sales' must be numeric but is string" in problems


# ------------------------------------------------------------------ graph <-> entry points <-> pyproject


def test_graph_entry_points_match_wheel_scripts_and_task_functions():
    scripts = tomllib.loads((ROOT / "workloads" / "pyproject.toml").read_text())["project"]["scripts"]
    used = {t.entry_point for j in JOBS.values() for t in j.tasks}
    assert used == set(TASKS) == set(scripts)
    for name, target in scripts.items():
        module, fn = target.split(":")
        assert module == "mlkit_workloads.entrypoint" and re.sub("-", "_", name.removeprefix("mlkit-")) == fn
    for job in JOBS.values():
        for t in job.tasks:
            assert set(task_params(t)) == set(TASKS[t.entry_point][1])
            assert task_key(t.entry_point) == t.key


def test_local_environment_settings_load():
    from envconfig.loader import load_environment

    cfg = load_environment("local", ROOT / "environments")
    assert cfg.workloads.forecast.source.format == "synthetic"
    assert cfg.workloads.classifier.source.format == "islp_default"


# ------------------------------------------------------------------ train_many's compact UDF rows


def test_udf_rows_expand_to_one_typed_row_per_group():
    """The UDF sends keys + one JSON column + the model; the driver gets every result column back."""
    import cloudpickle
    from mlkit_workloads.forecast.meta_model import decompress
    from mlkit_workloads.train_many import expand, make_udf, result_fields

    fit = make_udf(SMALL, ["store", "item"], SMALL_PLAN)
    raw = pd.concat([fit(("S1", "I1"), series(120)), fit(("S1", "I2"), series(20, store="S1", item="I2"))],
                    ignore_index=True)
    assert list(raw.columns) == ["store", "item", "result", "model"]  # the compact transfer
    out = expand(raw, ["store", "item"], [80, 95])
    names = [n for n, _ in result_fields([80, 95])]
    assert list(out.columns) == ["store", "item", *names[:-1], "model", "model_bytes"]
    assert list(out.status) == ["ok", "skipped"] and out.item.tolist() == ["I1", "I2"]
    assert out.n_rows.dtype == "int64" and out.mae.dtype == "float64" and out.coverage_95.dtype == "float64"
    assert out.search_trials.tolist() == [SMALL.search.n_trials, 0] and out.search_best_iteration.dtype == "int64"
    assert json.loads(out.search_params.iloc[0])["max_depth"] >= 2 and out.search_params.iloc[1] == ""
    ok = out.iloc[0]
    assert ok.n_rows == 120 and ok.model_type in ("seasonal_naive", "auto_theta", "xgboost") and ok.mase > 0
    model = cloudpickle.loads(decompress(ok.model, int(ok.model_bytes)))
    future = pd.DataFrame({"ds": pd.date_range("2024-04-30", periods=7, freq="D"), "promo": 0.0, "holiday": 0.0})
    assert len(model.forecast(7, future)) == 7 and model.last == pd.Timestamp("2024-04-29")
    assert np.isnan(out.mae.iloc[1]) and out.model.iloc[1] is None and out.model_bytes.iloc[1] == 0


def test_delta_rs_tables_are_written_in_row_groups_spark_can_split(tmp_path):
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    from mlkit_workloads.tables import ROW_GROUP_ROWS, DeltaRsStore

    store = DeltaRsStore(tmp_path)
    n = 2 * ROW_GROUP_ROWS + 10
    store.append("t", pd.DataFrame({"k": np.arange(n) % 7, "x": np.arange(n, dtype=float)}))
    (file,) = DeltaTable(store.path("t")).file_uris()
    assert pq.ParquetFile(file).metadata.num_row_groups == 3


def test_replace_where_adds_the_columns_of_a_newer_job_version(tmp_path):
    """A state folder written by an earlier version: its tables gain the new metric columns."""
    from mlkit_workloads.tables import DeltaRsStore

    store = DeltaRsStore(tmp_path)
    store.append("m", pd.DataFrame({"run_id": ["old"], "wape": [0.2]}))
    store.replace_where("m", pd.DataFrame({"run_id": ["new"], "wape": [0.1], "mase": [0.8]}), {"run_id": "new"})
    got = store.read_pandas("m").sort_values("run_id").reset_index(drop=True)
    assert list(got.run_id) == ["new", "old"] and got.mase.iloc[0] == 0.8 and pd.isna(got.mase.iloc[1])
