"""Several groups per UDF call (train_many and score): the per-group contract holds.

Each group gets exactly the rows, split, search, early stopping, metrics and status it gets in its
own call; a group that fails (bad data, or an exception outside train_group) fails alone.
"""

from __future__ import annotations

import json

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from mlkit_workloads.forecast.frequency import plan
from mlkit_workloads.forecast.meta_model import decompress
from mlkit_workloads.settings import Forecast
from mlkit_workloads import buckets, train_many

KEYS = ["store", "item"]
CFG = Forecast.model_validate({"horizon": 7, "backtest_windows": 2, "min_train_periods": 28,
                               "models": ["xgboost"], "search": {"n_trials": 2, "max_rounds": 15,
                                                                 "early_stopping_rounds": 3}})
PLAN = plan(CFG, "D")
BASELINE_ONLY = CFG.model_copy(update={"models": ["seasonal_naive"]})  # cheap, for what needs no search
# Differ between two runs of the same group by nature (wall clock), not by the batching.
TIMES = {"fit_seconds", "search_seconds"}


def series(days: int, seed: int, item: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=days, freq="D", tz="UTC")
    promo = (rng.random(days) < 0.1).astype(int)
    y = 20 + 8 * (dates.dayofweek >= 5) + 10 * promo + rng.normal(0, 1, days)
    return pd.DataFrame({"store": "S1", "item": item, "date": dates, "sales": y, "promo": promo, "holiday": 0})


def sample() -> pd.DataFrame:
    """Two good groups, one too short (skipped), one with duplicated dates (failed)."""
    bad = series(80, 9, "I6")
    bad.loc[5, "date"] = bad.loc[4, "date"]
    frames = [series(90 + 5 * i, i, f"I{i}") for i in range(1, 3)] + [series(20, 5, "I5"), bad]
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0)  # rows in no order


def comparable(out: pd.DataFrame) -> pd.DataFrame:
    """The result rows without the wall-clock columns, the models replaced by their forecasts."""
    future = pd.DataFrame({"ds": pd.date_range("2024-12-01", periods=7, freq="D"), "promo": 0.0, "holiday": 0.0})

    def forecast(blob, size):
        if blob is None:
            return None
        model = cloudpickle.loads(decompress(blob, int(size)))
        x = future.assign(ds=pd.date_range(model.last + pd.Timedelta(days=1), periods=7, freq="D"))
        return model.forecast(7, x)["mean"].round(9).tolist()

    fc = [forecast(b, n) for b, n in zip(out.model, out.model_bytes)]
    return out.drop(columns=[*TIMES, "model"]).assign(forecast=fc).sort_values(KEYS).reset_index(drop=True)


def per_group(pdf: pd.DataFrame) -> pd.DataFrame:
    fit = train_many.make_udf(CFG, KEYS, PLAN)
    rows = [fit(key, g.reset_index(drop=True)) for key, g in pdf.groupby(KEYS, sort=False)]
    return train_many.expand(pd.concat(rows, ignore_index=True), KEYS, list(CFG.levels))


def test_a_bucket_gives_each_group_what_its_own_call_gives():
    pdf = sample()
    fit_bucket = train_many.make_bucket_udf(CFG, KEYS, PLAN)
    got = train_many.expand(fit_bucket(pdf.assign(**{buckets.BUCKET: 0})), KEYS, list(CFG.levels))
    want = per_group(pdf)
    assert got.status.value_counts().to_dict() == {"ok": 2, "skipped": 1, "failed": 1}
    assert "duplicated timestamps" in got.set_index("item").reason["I6"]
    assert (got[got.status == "ok"].search_trials == 2).all()  # each group searched on its own
    pd.testing.assert_frame_equal(comparable(got), comparable(want))


def test_an_exception_outside_train_group_fails_that_group_only(monkeypatch):
    """Pickling the model breaks for one group: that group is failed with the reason, the rest train."""
    real = cloudpickle.dumps

    def dumps(obj, *a, **kw):
        if getattr(obj, "last", None) == pd.Timestamp("2024-04-04"):  # I1: 95 days from 2024-01-01
            raise RuntimeError("disk full while pickling")
        return real(obj, *a, **kw)

    monkeypatch.setattr(cloudpickle, "dumps", dumps)
    pdf = sample()
    fit_bucket = train_many.make_bucket_udf(BASELINE_ONLY, KEYS, PLAN)
    out = train_many.expand(fit_bucket(pdf.assign(**{buckets.BUCKET: 0})), KEYS, [80, 95])
    by = out.set_index("item")
    assert by.status["I1"] == "failed" and "disk full while pickling" in by.reason["I1"]
    assert by.model_bytes["I1"] == 0 and by.model["I1"] is None
    assert by.status["I2"] == "ok" and by.model_bytes["I2"] > 0


def test_layout_bounds_rows_per_call_and_uses_every_core():
    assert buckets.layout(1_500_000, 1000, 2) == (8, 8)  # 1.5M rows: one bucket per task
    tasks, n = buckets.layout(40_000_000, 10_000, 2)
    assert tasks == 8 and n % tasks == 0 and 40_000_000 / n <= buckets.MAX_ROWS_PER_CALL
    assert buckets.layout(300, 3, 2) == (3, 3)  # never more tasks or buckets than groups


@pytest.mark.spark
def test_spark_batched_and_one_group_per_call_agree(spark):
    sdf = spark.createDataFrame(sample().assign(date=lambda d: d.date.dt.tz_localize(None)))
    got = train_many.train_groups(spark, sdf, CFG, PLAN)
    want = train_many.train_groups(spark, sdf, CFG, PLAN, per_group=True)
    assert len(got) == 4 and json.loads(got.candidates[got.status == "ok"].iloc[0])["xgboost"]["mae"] > 0
    pd.testing.assert_frame_equal(comparable(got), comparable(want))


def test_scoring_a_bucket_isolates_a_group_whose_model_breaks():
    from mlkit_workloads.score import score_groups

    class Models:  # the meta model's predict contract: rows of any groups -> keys, ts, prediction, error
        def predict(self, rows):  # like GroupModels.predict, a call with a group whose model breaks raises
            if (rows.item == "I2").any():
                raise MemoryError("model too large to load")
            return rows[KEYS + ["date"]].assign(prediction=rows.step * 1.0, error="")

    pdf = pd.DataFrame({"store": "S1", "item": ["I1"] * 3 + ["I2"] * 3 + ["I3"] * 3, "step": [1, 2, 3] * 3,
                        "date": pd.Timestamp("2025-01-01")})
    out = score_groups(Models(), pdf, KEYS, [*KEYS, "step", "date", "prediction", "error"])
    assert len(out) == 9 and out.columns.tolist() == [*KEYS, "step", "date", "prediction", "error"]
    bad = out[out.item == "I2"]
    assert bad.prediction.isna().all() and bad.error.str.contains("MemoryError: model too large").all()
    good = out[out.item != "I2"]
    assert (good.error == "").all() and good.prediction.tolist() == [1.0, 2.0, 3.0] * 2


def test_future_rows_for_every_group_at_once():
    """Each group's horizon after its own last period, its planned features merged; an XGBoost group
    without future features is reported (with the first date missing), a statsforecast group is not."""
    from mlkit_workloads.forecast.bundle_spec import BundleSpec
    from mlkit_workloads.score import future_rows

    class Bundle:
        spec = BundleSpec(keys=tuple(KEYS), timestamp="date", features=("promo",), frequency="D", horizon=3)
        info = {("S1", "I1"): {"last_ts": "2025-01-10", "model_type": "xgboost"},
                ("S1", "I2"): {"last_ts": "2025-01-05", "model_type": "auto_ets"},
                ("S1", "I3"): {"last_ts": "2025-01-10", "model_type": "xgboost"}}

        def groups(self):
            return list(self.info)

        def group_info(self, key):
            return self.info[tuple(key)]

    future = pd.DataFrame({"store": "S1", "item": ["I1"] * 3 + ["I3"],
                           "date": pd.to_datetime(["2025-01-11", "2025-01-12", "2025-01-13", "2025-01-11"]),
                           "promo": [1.0, 0.0, 1.0, 1.0]})
    rows, cannot = future_rows(Bundle(), future)
    assert rows.columns.tolist() == [*KEYS, "step", "date", "promo"]
    i1, i2 = rows[rows.item == "I1"], rows[rows.item == "I2"]
    assert i1.date.dt.day.tolist() == [11, 12, 13] and i1.promo.tolist() == [1.0, 0.0, 1.0] and i1.step.tolist() == [1, 2, 3]
    assert i2.date.dt.day.tolist() == [6, 7, 8] and (i2.promo == 0.0).all()  # no features needed: filled
    assert list(cannot) == ["S1/I3"] and "none for 2025-01-12 in the future features" in cannot["S1/I3"]
    assert "I3" not in set(rows.item)


def small_bundle(tmp_path):
    """The ok groups of ``sample()`` (baseline-only) as a packed bundle, opened as GroupModels."""
    from mlkit_workloads.forecast.bundle_spec import BundleSpec
    from mlkit_workloads.forecast.meta_model import CODEC, FORECASTER, GroupModels, write_bundle

    fit_bucket = train_many.make_bucket_udf(BASELINE_ONLY, KEYS, PLAN)
    res = train_many.expand(fit_bucket(sample().assign(**{buckets.BUCKET: 0})), KEYS, list(CFG.levels))
    ok = res[res.status == "ok"]
    spec = BundleSpec.from_dict({"keys": KEYS, "timestamp": "date", "features": ["promo", "holiday"], "target": "sales",
                                 "levels": list(CFG.levels), **PLAN.as_dict()})
    write_bundle(tmp_path / "bundle", spec, ((tuple(r[k] for k in KEYS), r["model"],
                                              {"kind": FORECASTER, "bytes": int(r["model_bytes"]), "last_ts": r["last_ts"],
                                               "model_type": r["model_type"]}) for r in ok.to_dict("records")),
                 packed=True, codec=CODEC)
    return GroupModels(tmp_path / "bundle")


def test_scoring_a_bucket_in_one_call_gives_each_group_what_its_own_call_gives(tmp_path):
    """score_groups routes a whole bucket through one meta-model call: per group the same forecasts,
    intervals and errors as scoring the group alone (an unknown group and a date outside the horizon
    included)."""
    from mlkit_workloads.score import future_rows, score_groups

    models = small_bundle(tmp_path)
    rows, _ = future_rows(models, None)
    assert sorted(set(rows.item)) == ["I1", "I2"]
    rows.loc[rows.index[-1], "date"] += pd.Timedelta(days=30)  # I2's last row: beyond the horizon
    unknown = rows[rows.item == "I1"].assign(item="I9")
    pdf = pd.concat([rows, unknown], ignore_index=True).sample(frac=1.0, random_state=1)  # groups interleaved
    cols = [*KEYS, "step", "date", "prediction", *models.spec.bands, "error"]
    got = score_groups(models, pdf, KEYS, cols)
    alone = pd.concat([score_groups(models, g, KEYS, cols) for _, g in pdf.groupby(KEYS)], ignore_index=True)
    order = [*KEYS, "step"]
    pd.testing.assert_frame_equal(got.sort_values(order).reset_index(drop=True),
                                  alone.sort_values(order).reset_index(drop=True))
    by = got.set_index(["item", "step"]).sort_index()
    assert by.loc["I1"].prediction.notna().all() and (by.loc["I1"].error == "").all()
    assert by.loc["I9"].prediction.isna().all() and (by.loc["I9"].error == "no model for group S1/I9").all()
    assert "periods after the last trained period" in by.loc[("I2", 7), "error"]
    assert by.loc["I2"].error.iloc[:-1].eq("").all()


def test_scoring_layout_few_tasks_of_equal_groups():
    assert buckets.scoring_tasks(1000, 2, 1000) == 2  # one per core until a task would hold 1,000 groups
    assert buckets.scoring_tasks(10_000, 2, 1000) == 8  # then up to TASKS_PER_CORE per core
    assert buckets.scoring_tasks(5000, 2, 1000) == 5
    assert buckets.scoring_tasks(1, 2, 1000) == 1  # never more tasks than groups


@pytest.mark.spark
def test_each_bucket_lands_in_its_own_task(spark):
    """The bucket labels hash-partition exactly (bucket b in task b mod tasks), and scoring's deal
    keeps a group whole and the buckets within one group of each other."""
    from pyspark.sql import functions as F

    vals = [*range(-50, 3000, 7), 2**31 - 1, -2**31]
    hashed = spark.createDataFrame([(v,) for v in vals], "v int").select("v", F.hash("v").alias("h")).collect()
    assert [buckets._murmur3_int(r.v) for r in hashed] == [r.h for r in hashed]
    for n, tasks in [(8, 8), (160, 8), (5, 3)]:
        sdf = spark.createDataFrame(list(enumerate(buckets.labels(n, tasks))), f"b int, {buckets.BUCKET} int")
        placed = sdf.repartition(tasks, buckets.BUCKET).select("b", F.spark_partition_id().alias("task")).collect()
        assert sorted((r.b, r.task) for r in placed) == [(b, b % tasks) for b in range(n)]
    pdf = pd.DataFrame({"store": "S1", "item": np.repeat([f"I{i}" for i in range(7)], 3)})
    got = buckets.dealt(spark, pdf, KEYS, 3).select("item", F.spark_partition_id().alias("task")).toPandas()
    assert got.groupby("item").task.nunique().eq(1).all()  # a group is whole in one task
    assert sorted(got.drop_duplicates("item").task.value_counts().tolist()) == [2, 2, 3]


def test_scoring_names_a_model_directory_without_a_bundle(tmp_path):
    from mlkit_workloads.errors import WorkloadError
    from mlkit_workloads.score import model_bundle

    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n")
    with pytest.raises(WorkloadError, match="not a many-models bundle .*'bundle' artifact"):
        model_bundle(tmp_path)
