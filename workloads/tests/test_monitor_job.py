"""The monitoring job on real local engines: the service logs to Delta, the job reads it back,
compares with the training table version recorded by the model's run, writes table + report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient
from serve_helpers import (HORIZON, classifier_data, future, make_bundle, register, registered_classifier,
                           registered_with_metrics, registry_dir, serve_shifted_traffic, served, sqlite_uri, training_table)

from mlkit_workloads.context import LocalTaskContext
from mlkit_workloads.errors import WorkloadError
from mlkit_workloads.monitor import job as monitor
from mlkit_workloads.monitor.psi import distribution, psi
from mlkit_workloads.monitor.settings import MonitoringSettings
from mlkit_workloads.runtime import Runtime
from mlkit_workloads.serve.runner import build
from mlkit_workloads.serve.sinks import DeltaSink
from mlkit_workloads.settings import Tracking, WorkloadSettings
from mlkit_workloads.tables import DeltaRsStore


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 5000)
    assert psi(ref, rng.normal(0, 1, 5000)) < 0.02
    assert psi(ref, rng.normal(1, 1, 5000)) > 0.25
    flags = (rng.random(5000) < 0.2).astype(float)
    assert psi(flags, (rng.random(1000) < 0.2).astype(float)) < 0.02
    assert psi(flags, np.ones(1000)) > 1.0


def test_psi_counts_missing_and_unseen_values_as_their_own_bins():
    ref = np.array([0.0, 1.0] * 50)
    shares = distribution(np.array([0.0, 1.0, 2.0, np.nan]), ref, 10)
    assert shares.tolist() == [0.25, 0.25, 0.25, 0.25]  # value 0, value 1, unseen, missing
    assert psi(ref, np.full(100, np.nan)) > 1.0  # a feature that starts arriving as null is drift
    assert np.isnan(psi(ref, np.array([])))


def test_a_categorical_features_plot_names_its_categories_not_their_codes(tmp_path):
    from mlkit_workloads.monitor.classifier import NEW_CATEGORY, code_labels, codes
    from mlkit_workloads.monitor.report import feature_plot

    ref = pd.Series(["Yes", "No", "No", None, "No"] * 40)
    cur = pd.Series(["Yes", "Yes", "Maybe", "No"] * 25)  # "Maybe": never seen in training
    ref_codes, cur_codes = codes(ref, cur)
    ticks = feature_plot(tmp_path / "student.png", "student", ref_codes, cur_codes, 0.5, True, code_labels(ref))
    assert ticks == ["No", "Yes", NEW_CATEGORY] and (tmp_path / "student.png").stat().st_size > 0
    # a numeric flag keeps its values as ticks
    assert feature_plot(tmp_path / "flag.png", "flag", np.array([0.0, 1.0]), np.array([1.0]), 0.1, False) == ["0", "1"]


def test_monitor_flags_feature_and_group_drift(tmp_path, experiment_prefix):
    store = DeltaRsStore(tmp_path / "tables")
    (tmp_path / "tables").mkdir()
    table_version = training_table(store)
    name = f"forecast_monitor_{tmp_path.name[-12:]}"
    version = registered_with_metrics(store, name, table_version)

    built = build(served(name, alias_poll_seconds=60), env="local", cache_dir=tmp_path / "cache", tracking_uri=sqlite_uri(registry_dir()),
                  sink=DeltaSink(Path(store.path("inference_log"))), auth=None)
    train = store.read_pandas("forecast_sales", table_version)
    with TestClient(built.app) as c:
        serve_shifted_traffic(c)
    assert built.logger.counts()["delivered"] == 36

    settings = WorkloadSettings(tracking=Tracking(experiment_prefix=experiment_prefix), forecast={"registered_model": name})
    ctx = LocalTaskContext("monitor")
    rt = Runtime(env="local", settings=settings, spark=None, tables=store, context=ctx)
    out = monitor.run(rt)

    assert out["served_rows"] == 3 * 12 * HORIZON and out["model_versions"] == [version]
    assert out["drifted_features"] == ["promo"]  # promo forced to 1 for half the XGBoost traffic; holiday untouched
    assert out["drifted_groups"] == ["S00/I02"]  # its forecasts moved up with the promo; I00 forecasts as in backtest
    results = DeltaTable(store.path("monitoring_results")).to_pandas()
    feats = results[results.kind == "feature"].set_index("subject")
    assert feats.loc["promo", "psi"] > 0.2 and feats.loc["holiday", "psi"] < 0.2
    # Only the groups whose model reads the features count: I01's rows carry none.
    assert feats.loc["promo", "n_cur"] == 2 * 12 * HORIZON and feats.loc["promo", "n_ref"] == len(train)
    groups = results[results.kind == "prediction"].set_index("subject")
    assert set(groups.index) == {"S00/I00", "S00/I01", "S00/I02"}
    assert (groups.n_ref == 3 * HORIZON).all()  # the reference: each group's backtest (3 windows x horizon)
    assert groups.loc["S00/I00", "verdict"] == "ok" and groups.loc["S00/I02", "verdict"] == "drift"

    report = Path(out["report"])
    text = report.read_text()
    assert "DRIFT: feature promo, group S00/I02" in text and f"version {version}" in text
    assert "predictions: backtest of" in text and "forecast_group_metrics, 3 group(s)" in text
    pngs = sorted(report.parent.glob("*.png"))
    assert [p.name for p in pngs] == sorted([f"forecast_v{version}_feature_promo.png", f"forecast_v{version}_feature_holiday.png",
                                             f"forecast_v{version}_prediction_psi_by_group.png"])
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(f"]({p.name})" in text for p in pngs)
    arts = mlflow.MlflowClient().list_artifacts(out["mlflow_run_id"], "monitoring_report")
    assert "monitoring_report/report.md" in {a.path for a in arts}
    assert ctx.get("monitor", "drifted_features") == ["promo"]

    # The same run with fail_on_drift stops the task (and so the job run), naming what drifted.
    strict = settings.model_copy(update={"monitoring": MonitoringSettings(fail_on_drift=True)})
    with pytest.raises(WorkloadError, match="DRIFT: feature promo, group S00/I02"):
        monitor.run(Runtime(env="local", settings=strict, spark=None, tables=store, context=LocalTaskContext("m")))


def test_monitor_names_missing_inputs(tmp_path, experiment_prefix):
    store = DeltaRsStore(tmp_path / "tables")
    (tmp_path / "tables").mkdir()
    rt = Runtime(env="local", settings=WorkloadSettings(), spark=None, tables=store, context=LocalTaskContext("m"))
    out = monitor.run(rt)  # nothing served yet: says so, writes nothing, does not fail the job
    assert out["served_rows"] == 0 and "nothing to monitor" in out["note"]
    assert out["outcome"] == "nothing to compare"  # the runner's task table shows that, not "ok"
    assert not (tmp_path / "tables" / "monitoring_results").exists()
    # An event from a model whose run recorded no training table: the error says which version and why.
    name = f"forecast_norun_{tmp_path.name[-12:]}"
    version = register(sqlite_uri(registry_dir()), name, make_bundle(tmp_path / "bundle", 1))
    short, name = name, f"mlk_local.ml.{name}"  # the full name it is registered (and served, logged) under
    DeltaSink(store.path("inference_log")).send([{
        "request_id": "r", "ts": pd.Timestamp.now(tz="UTC").isoformat(), "env": "local", "model_name": name,
        "model_version": version, "group_key": json.dumps(["S00", "I00"]), "group": {"store": "S00", "item": "I00"},
        "inputs": [{"date": "2024-01-01T00:00:00Z", "promo": 1.0, "holiday": 0.0}], "outputs": [1.0],
        "latency_ms": 1.0}])
    with pytest.raises(WorkloadError, match=f"inferences of {name}, which no job of this environment registers"):
        monitor.run(rt)  # the environment's jobs register other models: the error names the stranger
    rt = Runtime(env="local", settings=WorkloadSettings(forecast={"registered_model": short}), spark=None, tables=store,
                 context=LocalTaskContext("m"))
    with pytest.raises(WorkloadError, match=f"{name} version {version}: its run .* records no data_table"):
        monitor.run(rt)


def test_monitor_finds_training_data_a_data_run_kept_in_its_own_folder(tmp_path, experiment_prefix):
    """`mlkit run --data` keeps its tables under tables/data-<stem>-<hash>/; the service logs under
    tables/. The monitor job reads the log where the service writes it and the reference where the
    model's run recorded it (data_path)."""
    root = tmp_path / "tables"
    root.mkdir()
    data_store = DeltaRsStore(root / "data-sales-0123abcd")
    table_version = training_table(data_store)
    name = f"forecast_datarun_{tmp_path.name[-12:]}"
    version = registered_with_metrics(data_store, name, table_version, train_path=data_store.path("forecast_sales"))
    short, name = name, f"mlk_local.ml.{name}"  # the full name it is registered (and served, logged) under
    store = DeltaRsStore(root)  # the monitor job's tables: where `mlkit serve` writes the inference log
    DeltaSink(store.path("inference_log")).send([{
        "request_id": "r", "ts": pd.Timestamp.now(tz="UTC").isoformat(), "env": "local", "model_name": name,
        "model_version": version, "group_key": "S00|I00", "group": {"store": "S00", "item": "I00"},
        "inputs": [{"date": d, "promo": 1.0, "holiday": 0.0} for d in future(HORIZON)] * 4,
        "outputs": [30.0] * 4 * HORIZON, "latency_ms": 1.0}])
    settings = WorkloadSettings(tracking=Tracking(experiment_prefix=experiment_prefix), forecast={"registered_model": short})
    out = monitor.run(Runtime(env="local", settings=settings, spark=None, tables=store, context=LocalTaskContext("m")))
    assert out["served_rows"] == 4 * HORIZON and out["model_versions"] == [version] and "outcome" not in out
    text = Path(out["report"]).read_text()
    assert str(root / "data-sales-0123abcd" / "forecast_sales") in text
    # The backtest reference comes from the group-metrics table beside that training table.
    assert str(root / "data-sales-0123abcd" / "forecast_group_metrics") in text
    groups = data_store.read_pandas("forecast_group_metrics")
    assert len(groups) == 3
    results = store.read_pandas("monitoring_results").set_index("subject")
    assert results.loc["S00/I00", "n_ref"] == 3 * HORIZON and results.loc["S00/I00", "verdict"] == "drift"


def test_monitor_covers_every_served_model_with_a_section_each(tmp_path, experiment_prefix):
    """The forecast and the classifier served side by side: PSI per feature of each, the forecast's
    per-group predictions, the classifier's score; one report section per model."""
    store = DeltaRsStore(tmp_path / "tables")
    (tmp_path / "tables").mkdir()
    fc = f"forecast_both_{tmp_path.name[-12:]}"
    fc_version = registered_with_metrics(store, fc, training_table(store))
    x, y = classifier_data()
    cl_table_version = store.append("classifier_data", x.assign(default=np.where(y == 1, "Yes", "No")))
    cl = f"classifier_both_{tmp_path.name[-12:]}"
    cl_version = registered_classifier(cl, train_table="classifier_data", train_version=cl_table_version)

    built = build(served(fc, cl, alias_poll_seconds=60), env="local", cache_dir=tmp_path / "cache",
                  tracking_uri=sqlite_uri(registry_dir()), sink=DeltaSink(Path(store.path("inference_log"))), auth=None)
    sample = x.sample(120, random_state=1)
    with TestClient(built.app) as c:
        serve_shifted_traffic(c)
        for i, part in enumerate(np.array_split(sample, 3)):
            rows = part.assign(balance=part.balance * 3.0).to_dict("records")  # balances far above training's
            r = c.post("/v1/models/classifier/predict", json={"rows": rows})
            assert r.status_code == 200, r.text
    assert built.logger.counts()["delivered"] == 36 + 3

    settings = WorkloadSettings(tracking=Tracking(experiment_prefix=experiment_prefix),
                                forecast={"registered_model": fc}, classifier={"registered_model": cl})
    out = monitor.run(Runtime(env="local", settings=settings, spark=None, tables=store, context=LocalTaskContext("m")))

    assert out["models"] == sorted([f"mlk_local.ml.{fc}", f"mlk_local.ml.{cl}"])
    assert out["model_versions"] == sorted({fc_version, cl_version})
    assert "balance" in out["drifted_features"] and "promo" in out["drifted_features"]
    results = store.read_pandas("monitoring_results")
    mine = results[results.model_name == f"mlk_local.ml.{cl}"].set_index("subject")
    assert set(mine.kind) == {"feature", "score"} and set(mine.index) == {"student", "balance", "income", "probability"}
    assert mine.loc["balance", "drift"] and not mine.loc["student", "drift"]  # student rows as sampled
    assert mine.loc["probability", "n_cur"] == 120 and mine.loc["probability", "n_ref"] == len(x)
    assert out["drifted_scores"] == [f"mlk_local.ml.{cl}"]  # three times the balance: far more defaults scored
    text = Path(out["report"]).read_text()
    assert f"## mlk_local.ml.{fc} (forecast)" in text and f"## mlk_local.ml.{cl} (classifier)" in text
    assert "#### Score (PSI of the served probabilities" in text
    assert f"classifier_v{cl_version}_feature_student.png" in text
