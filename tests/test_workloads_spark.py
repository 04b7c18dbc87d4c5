"""Spark integration on the shared local session: ingest, the forecast job, promote, score, classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlkit.local.runner import run_jobs, settings_for_run
from mlkit_workloads import ingest
from mlkit_workloads.compat import PANDAS_2
from mlkit_workloads.context import LocalTaskContext
from mlkit_workloads.errors import DataError
from mlkit_workloads.graph import JOBS
from mlkit_workloads.runtime import TABLES, Runtime
from mlkit_workloads.settings import Source, WorkloadSettings
from mlkit_workloads.tables import DeltaRsStore

pytestmark = pytest.mark.slow


def sales_csv(path: Path) -> Path:
    """3 learnable series + a constant one, a too-short one and one with mostly missing sales."""
    rng = np.random.default_rng(0)
    frames = []
    for store, kind in [("S1", "ok"), ("S2", "ok"), ("S3", "ok"), ("S4", "constant"), ("S5", "short"), ("S6", "nan")]:
        days = 40 if kind == "short" else 150
        dates = pd.date_range("2024-01-01", periods=days, freq="D")
        promo = (rng.random(days) < 0.15).astype(int)
        y = 30 + 12 * (dates.dayofweek >= 5) + 15 * promo + rng.normal(0, 1.5, days)
        if kind == "constant":
            y[:] = 7.0
        if kind == "nan":
            y[rng.random(days) < 0.5] = np.nan
        frames.append(pd.DataFrame({"store": store, "item": "I1", "date": dates.strftime("%Y-%m-%d"),
                                    "sales": y.round(2), "promo": promo, "holiday": 0}))
    pd.concat(frames).to_csv(path, index=False)
    return path


def small_settings(**gates) -> WorkloadSettings:
    return WorkloadSettings.model_validate({
        "forecast": {"min_train_periods": 60, "horizon": 7, "backtest_windows": 2, "models": ["auto_theta", "xgboost"],
                     "search": {"n_trials": 3, "max_rounds": 60, "early_stopping_rounds": 5},
                     # 3 series of weekly pattern + promotions: the seasonal naive is hard to beat on them.
                     "gates": {"min_share_ok": 0.4, "max_median_wape": 0.5, "min_share_beating_baseline": 0.3,
                               **gates}},
        "classifier": {"search": {"n_trials": 2, "max_rounds": 20}, "oversampling": "smote",
                       "gates": {"min_roc_auc": 0.8, "min_kappa": 0.1}},
    })


def runtime(spark, settings, root: Path, task="ingest") -> Runtime:
    return Runtime("test", settings, spark, DeltaRsStore(root), LocalTaskContext(task))


# ------------------------------------------------------------------ ingest


def test_ingest_is_idempotent_and_versioned(spark, tmp_path):
    csv = sales_csv(tmp_path / "sales.csv")
    s = settings_for_run(small_settings(), tmp_path, csv)
    rt = runtime(spark, s, tmp_path / "tables")
    first = ingest.run(rt, "forecast")
    assert (first["table_version"], first["rows_inserted"]) == (0, first["rows_read"])
    again = ingest.run(rt, "forecast")
    assert (again["table_version"], again["rows_inserted"]) == (0, 0)
    table = rt.tables.read_pandas(TABLES["forecast"])
    assert len(table) == first["rows_read"] and not table.duplicated(["store", "item", "date"]).any()
    # Stored as microseconds (Delta); pandas < 2 (the runtime's 1.5.3) has nanoseconds only.
    assert str(table.date.dtype) == ("datetime64[us, UTC]" if PANDAS_2 else "datetime64[ns, UTC]")
    # New rows only: one more day for S1 -> version 1 with exactly one row inserted.
    df = pd.read_csv(csv)
    extra = pd.concat([df, df[df.store == "S1"].tail(1).assign(date="2024-12-31")])
    extra.to_csv(csv, index=False)
    third = ingest.run(rt, "forecast")
    assert (third["table_version"], third["rows_inserted"]) == (1, 1)
    assert rt.context.get("ingest", "table_version") == 1


@pytest.mark.parametrize("mutate, expected", [
    (lambda df: df.drop(columns=["promo"]), "column 'promo' is missing"),
    (lambda df: df.assign(sales=df.sales.astype(str).where(df.index != 5, "lots")),
     "column 'sales': first bad value 'lots' at data row 6"),
    (lambda df: df.iloc[:0], "the source is empty"),
    (lambda df: df.assign(date=df.date.where(df.index != 3, "yesterday")), "column 'date': 1 row(s) empty or not a date"),
])
def test_bad_input_names_column_and_file_and_writes_nothing(spark, tmp_path, mutate, expected):
    csv = sales_csv(tmp_path / "sales.csv")
    mutate(pd.read_csv(csv)).to_csv(csv, index=False)
    s = settings_for_run(small_settings(), tmp_path, csv)
    rt = runtime(spark, s, tmp_path / "tables")
    with pytest.raises(DataError) as e:
        ingest.run(rt, "forecast")
    assert expected in str(e.value) and str(csv) in str(e.value) and "nothing was written" in str(e.value)
    assert rt.tables.version(TABLES["forecast"]) is None


# ------------------------------------------------------------------ the forecast job, end to end


@pytest.fixture(scope="module")
def forecast_run(spark, mlflow_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forecast")
    base = small_settings()
    with_future = base.model_copy(update={"forecast": base.forecast.model_copy(
        update={"future_features": Source(format="csv", path=str(future_csv(tmp / "future.csv")))})})
    settings = settings_for_run(with_future, tmp, sales_csv(tmp / "sales.csv"))
    report = run_jobs(settings, ["forecast"], spark, "test", tmp)
    return report, settings, tmp


def future_csv(path: Path) -> Path:
    """The planned promotions for the 14 days after sales_csv's history (2024-05-29), every store."""
    dates = pd.date_range("2024-05-30", periods=14, freq="D").strftime("%Y-%m-%d")
    pd.concat([pd.DataFrame({"store": s, "item": "I1", "date": dates, "promo": np.arange(14) % 5 == 0,
                             "holiday": 0}).astype({"promo": int}) for s in ("S1", "S2", "S3", "S4", "S5", "S6")]
              ).to_csv(path, index=False)
    return path


def test_runner_executes_the_graph_in_dependency_order(forecast_run):
    report, _, _ = forecast_run
    assert [(t.key, t.entry_point) for t in report.tasks] == [(t.key, t.entry_point) for t in JOBS["forecast"].tasks]
    order = [t.key for t in report.tasks]
    for t in JOBS["forecast"].tasks:
        assert all(order.index(d) < order.index(t.key) for d in t.depends_on)
    assert report.ok, [t.error for t in report.tasks]


def test_train_many_statuses_and_tracking(forecast_run):
    import mlflow

    report, settings, _ = forecast_run
    res = report.result("forecast", "train_many")
    assert res["model_name"] == "mlk_local.ml.forecast"  # three levels on the local registry too
    metrics = DeltaRsStore(settings.tables.root).read_pandas(TABLES["group_metrics"])
    got = dict(zip(metrics.store, metrics.status))
    assert got == {"S1": "ok", "S2": "ok", "S3": "ok", "S4": "skipped", "S5": "skipped", "S6": "skipped"}
    reasons = dict(zip(metrics.store, metrics.reason))
    assert reasons["S5"].startswith("too few periods (40 < 74") and "missing" in reasons["S6"]
    assert res["frequency"] == "D" and res["frequency_source"] == "inferred from 150 distinct timestamps"
    assert set(metrics.model_type[metrics.status == "ok"]) <= {"seasonal_naive", "auto_theta", "xgboost"}
    # The XGBoost candidate's per-group search: trials run, best params, best iteration, validation MAE.
    ok = metrics[metrics.status == "ok"]
    assert {"search_trials", "search_params", "search_best_iteration", "search_val_mae", "search_seconds"} <= set(metrics)
    assert (ok.search_trials == 3).all() and (metrics.search_trials[metrics.status == "skipped"] == 0).all()
    assert all(set(json.loads(p)) == {"max_depth", "learning_rate", "min_child_weight", "subsample", "reg_lambda"}
               for p in ok.search_params)
    assert ok.search_best_iteration.between(1, 60).all() and (ok.search_val_mae > 0).all()
    assert (metrics.run_id == res["run_id"]).all() and metrics.model_version.nunique() == 1
    run = mlflow.get_run(res["run_id"])
    assert run.data.params["data_table_version"] == "0" and "+" in run.data.params["code_version"]
    assert run.data.metrics["groups_ok"] == 3
    model = mlflow.pyfunc.load_model(f"models:/{res['model_name']}/{res['model_version']}")
    assert sorted(model.unwrap_python_model().groups()) == [("S1", "I1"), ("S2", "I1"), ("S3", "I1")]
    assert model.metadata.get_input_schema().input_names() == ["store", "item", "date", "promo", "holiday"]
    # One packed file for all boosters, and the serving service's loader still opens it.
    from mlkit_workloads.forecast.meta_model import GroupModels, bundle_dir

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{res['model_name']}/{res['model_version']}"))
    bundle = bundle_dir(local)
    assert sorted(p.name for p in bundle.iterdir()) == ["index.json", "models.bin"]
    # The future: the 7 days after the history, with planned promotions (the request carries them).
    rows = pd.DataFrame({"store": "S2", "item": "I1", "date": pd.date_range("2024-05-30", periods=7, freq="D"),
                         "promo": [0, 1, 0, 0, 0, 1, 0], "holiday": 0})
    served = GroupModels(bundle).predict_group(("S2", "I1"), rows)
    out = model.predict(rows)  # pyfunc's schema check takes naive datetimes (as Spark hands them over, in UTC)
    np.testing.assert_allclose(served, out.prediction, rtol=1e-6)
    assert (out.error == "").all() and (out.lo_95 <= out.prediction).all() and (out.prediction <= out.hi_95).all()
    past = model.predict(rows.assign(date=pd.Timestamp("2024-05-01")))
    assert past.prediction.isna().all() and "is not after the last trained period 2024-05-29" in past.error.iloc[0]


def test_promote_pass_sets_champion_and_score_reports_missing_groups(forecast_run):
    from mlflow import MlflowClient

    report, settings, _ = forecast_run
    pr, sc = report.result("forecast", "promote"), report.result("forecast", "score")
    assert pr["passed"] and pr["previous_champion"] == ""
    assert MlflowClient().get_model_version_by_alias("mlk_local.ml.forecast", "champion").version == pr["model_version"]
    assert sorted(sc["groups_without_model"]) == ["S4/I1", "S5/I1", "S6/I1"]
    store = DeltaRsStore(settings.tables.root)
    preds = store.read_pandas(TABLES["predictions"])
    assert len(preds) == sc["rows_scored"] == 3 * 7 and preds.prediction.notna().all()
    assert set(preds.model_version) == {pr["model_version"]}
    # The next 7 days after the last observed one, with intervals.
    last = store.read_pandas(TABLES["forecast"]).date.max()
    assert sorted(preds.date.unique()) == list(pd.date_range(last + pd.Timedelta(days=1), periods=7, freq="D"))
    assert (preds.lo_80 <= preds.prediction).all() and (preds.hi_95 >= preds.hi_80).all()
    assert not preds.duplicated(["store", "item", "date", "model_version"]).any()
    assert sc["groups_not_forecast"] == {}


def test_score_says_why_a_group_cannot_be_forecast_without_future_features(forecast_run, spark):
    """The same champion, the future-features source taken away: groups whose model uses the
    features are reported with the reason, the others are still forecast."""
    from mlkit_workloads import score

    report, settings, _ = forecast_run
    bare = settings.model_copy(update={"forecast": settings.forecast.model_copy(update={"future_features": None})})
    rt = runtime(spark, bare, Path(settings.tables.root), task="score")
    try:
        res = score.run(rt)
        metrics = DeltaRsStore(settings.tables.root).read_pandas(TABLES["group_metrics"])
        metrics = metrics[(metrics.run_id == report.result("forecast", "train_many")["run_id"]) & (metrics.status == "ok")]
        needs = {f"{r.store}/{r.item}" for r in metrics.itertuples() if r.model_type == "xgboost"}
        assert set(res["groups_not_forecast"]) == needs
        assert all("needs future values of promo, holiday: no forecast.future_features source is configured" in why
                   for why in res["groups_not_forecast"].values())
        assert res["rows_scored"] == 7 * (3 - len(needs))
    finally:  # put the full set of this version's predictions back for the tests after this one
        score.run(runtime(spark, settings, Path(settings.tables.root), task="score"))


def test_promote_fail_keeps_champion_and_stops_the_job(forecast_run, spark):
    from mlflow import MlflowClient

    _, settings, tmp = forecast_run
    champion = MlflowClient().get_model_version_by_alias("mlk_local.ml.forecast", "champion").version
    strict = settings.model_copy(update={"forecast": settings.forecast.model_copy(
        update={"gates": settings.forecast.gates.model_copy(update={"max_median_wape": 0.0001})})})
    # Forced: the same data and model settings would otherwise reuse the trained version (gates are
    # not part of what makes a training the same).
    report = run_jobs(strict, ["forecast"], spark, "test", tmp, force=True)
    statuses = {t.key: t.status for t in report.tasks}
    assert statuses == {"ingest": "ok", "train_many": "ok", "promote": "failed", "score": "not run",
                        "export": "not run"}
    err = next(t.error for t in report.tasks if t.key == "promote")
    assert "was not promoted (champion unchanged)" in err and "FAIL: median WAPE" in err
    assert MlflowClient().get_model_version_by_alias("mlk_local.ml.forecast", "champion").version == champion
    decisions = DeltaRsStore(settings.tables.root).read_pandas(TABLES["decisions"])
    assert list(decisions.sort_values("decided_at").passed) == [True, False]


# ------------------------------------------------------------------ classifier


def test_classifier_job_with_tiny_budget(spark, mlflow_server, tmp_path):
    import mlflow

    settings = settings_for_run(small_settings(), tmp_path)
    report = run_jobs(settings, ["classifier"], spark, "test", tmp_path)
    assert [t.key for t in report.tasks] == [t.key for t in JOBS["classifier"].topological_order()]
    assert report.ok, [t.error for t in report.tasks]
    res = report.result("classifier", "train_classifier")
    parent = mlflow.get_run(res["run_id"])
    children = mlflow.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{res['run_id']}'")
    assert len(children) == 2 and "metrics.val_kappa" in children.columns
    assert parent.data.params["data_table_version"] == "0"
    assert res["test_roc_auc"] > 0.8
    model = mlflow.sklearn.load_model(f"models:/{res['model_name']}/{res['model_version']}")
    rows = DeltaRsStore(settings.tables.root).read_pandas(TABLES["classifier"]).head(50)
    assert set(model.predict(rows[["student", "balance", "income"]])) <= {0, 1}
    assert report.result("classifier", "promote")["passed"]


# ------------------------------------------------------------------ bring your own data: a monthly CSV


def monthly_settings() -> WorkloadSettings:
    """The README's worked example: a monthly CSV with its own column names, nothing else set."""
    return WorkloadSettings.model_validate({"forecast": {
        "columns": {"group_keys": ["region"], "timestamp": "month", "target": "value", "features": []},
        "models": ["auto_ets", "xgboost"], "search": {"max_rounds": 30}, "registered_model": "forecast_monthly"}})


def test_monthly_csv_trains_every_series_and_forecasts_past_its_end(spark, mlflow_server, tmp_path):
    from mlkit_workloads.data.synthetic import monthly

    csv = tmp_path / "monthly.csv"
    raw = monthly(series=8, months=240)
    raw.to_csv(csv, index=False)
    settings = settings_for_run(monthly_settings(), tmp_path, csv)
    report = run_jobs(settings, ["forecast"], spark, "test", tmp_path)
    assert report.ok, [t.error for t in report.tasks]
    tm, sc = report.result("forecast", "train_many"), report.result("forecast", "score")
    assert (tm["frequency"], tm["season_length"], tm["horizon"]) == ("MS", 12, 12)
    store = DeltaRsStore(settings.tables.root)
    metrics = store.read_pandas(TABLES["group_metrics"])
    assert list(metrics.status) == ["ok"] * 8, metrics[["region", "status", "reason"]]  # NaN before the start, gaps
    assert (metrics.n_filled > 0).any()
    preds = store.read_pandas(TABLES["predictions"])
    assert sc["groups_scored"] == 8 and len(preds) == 8 * 12
    assert preds.month.min() == pd.Timestamp("2025-01-01", tz="UTC")  # the month after the data's last one
    assert preds.month.max() == pd.Timestamp("2025-12-01", tz="UTC")
    # Most series beat the seasonal naive in the backtest, and the gates passed.
    assert (metrics.model_type != "seasonal_naive").mean() >= 0.5 and report.result("forecast", "promote")["passed"]
    # An identical re-run (same data version, same settings) skips training: no new version, and
    # its score task replaces the version's predictions instead of adding a second set.
    same = run_jobs(settings, ["forecast"], spark, "test", tmp_path)
    assert same.ok, [t.error for t in same.tasks]
    assert same.result("forecast", "train_many")["outcome"] == "skipped"
    assert same.result("forecast", "train_many")["model_version"] == sc["model_version"]
    assert len(store.read_pandas(TABLES["predictions"])) == 96
    assert len(store.read_pandas(TABLES["group_metrics"])) == 8
    # Forced: a new model version with its own set of predictions, the first set untouched.
    again = run_jobs(settings, ["forecast"], spark, "test", tmp_path, force=True)
    assert again.ok, [t.error for t in again.tasks]
    preds = store.read_pandas(TABLES["predictions"])
    assert preds.groupby("model_version").size().to_dict() == {sc["model_version"]: 96,
                                                               again.result("forecast", "score")["model_version"]: 96}
    # Scoring the same version again replaces its rows (one set per model version).
    from mlkit_workloads import score

    rt = runtime(spark, settings, Path(settings.tables.root), task="score")
    score.run(rt)
    assert len(store.read_pandas(TABLES["predictions"])) == 2 * 96


def test_a_run_where_no_group_trains_registers_nothing(spark, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    from mlkit_workloads.data.synthetic import monthly

    csv = tmp_path / "short.csv"
    monthly(series=3, months=240).groupby("region").tail(30).to_csv(csv, index=False)  # 30 months < 60 needed
    settings = settings_for_run(monthly_settings().model_copy(update={"forecast": monthly_settings().forecast.model_copy(
        update={"registered_model": "forecast_none"})}), tmp_path, csv)
    report = run_jobs(settings, ["forecast"], spark, "test", tmp_path)
    statuses = {t.key: t.status for t in report.tasks}
    assert statuses == {"ingest": "ok", "train_many": "failed", "promote": "not run", "score": "not run",
                        "export": "not run"}
    err = next(t.error for t in report.tasks if t.key == "train_many")
    assert "no group trained (3 groups), so no model version was registered" in err
    assert "R01: skipped: too few periods (30 < 60" in err
    assert MlflowClient().search_model_versions("name = 'forecast_none'") == []

