"""Several models in one service: the forecast bundle and the classifier, each with its own route,
schema, watcher and readiness (in-process ASGI client, the small registered models of serve_helpers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import fitted_classifier, future, registered, registered_classifier, registry_dir, served, sqlite_uri

from mlkit_workloads.inference_event import event_table
from mlkit_workloads.serve.runner import build

FORECAST, CLASSIFIER = "forecast_both", "classifier_both"


class ListSink:
    name = "memory"

    def __init__(self):
        self.events = []

    def send(self, events):
        self.events.extend(events)

    def close(self):
        pass


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    registered(FORECAST, 4)
    registered_classifier(CLASSIFIER)
    sink = ListSink()
    b = build(served(FORECAST, CLASSIFIER, alias_poll_seconds=60, inference_log={"batch_size": 1,
                                                                                  "flush_seconds": 0.05}),
              env="local", cache_dir=tmp_path_factory.mktemp("both"), tracking_uri=sqlite_uri(registry_dir()),
              sink=sink, auth=None)
    with TestClient(b.app) as c:
        yield b, c, sink


def _example(client, schema: str) -> dict:
    return client.get("/openapi.json").json()["components"]["schemas"][schema]["examples"][0]


def test_the_classifier_openapi_example_returns_a_probability(both):
    b, c, _ = both
    example = _example(c, "ClassifierPredictRequest")
    assert set(example["rows"][0]) == {"student", "balance", "income"}  # the model's signature
    r = c.post("/v1/models/classifier/predict", json=example)
    assert r.status_code == 200, r.text
    body = r.json()
    model = fitted_classifier()
    expected = model.predict_proba(pd.DataFrame(example["rows"]))[:, 1]
    assert body["probabilities"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert all(0 <= p <= 1 for p in body["probabilities"])
    assert body["threshold"] == pytest.approx(model.threshold) and body["positive_label"] == "Yes"
    assert body["labels"] == [int(p >= body["threshold"]) for p in body["probabilities"]]
    assert body["model"] == {"name": f"mlk_local.ml.{CLASSIFIER}", "version": b.services["classifier"].current.version}


def test_both_models_are_listed_ready_and_the_forecast_still_answers(both):
    b, c, _ = both
    models = c.get("/v1/models").json()["models"]
    assert set(models) == {"forecast", "classifier"} and all(m["ready"] for m in models.values())
    assert models["classifier"]["predict"] == "/v1/models/classifier/predict"
    ready = c.get("/readyz").json()
    assert ready["models"]["classifier"]["version"] == b.services["classifier"].current.version
    fc = _example(c, "PredictRequest")
    assert c.post("/v1/models/forecast/predict", json=fc).status_code == 200
    assert c.post("/v1/predict", json=fc).json()["predictions"] == c.post("/v1/models/forecast/predict",
                                                                           json=fc).json()["predictions"]
    r = c.get("/v1/models/forecast/groups/S00/I01")
    assert r.status_code == 200 and r.json()["last_ts"]


def test_each_route_documents_its_own_schema(both):
    _, c, _ = both
    paths = c.get("/openapi.json").json()["paths"]
    ref = paths["/v1/models/classifier/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert ref["$ref"].endswith("/ClassifierPredictRequest")
    ref = paths["/v1/models/forecast/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert ref["$ref"].endswith("/PredictRequest")


@pytest.mark.parametrize("row, field", [
    ({"student": "No", "balance": "lots", "income": 1.0}, "body.rows.0.balance"),
    ({"student": "No", "balance": 1.0}, "body.rows.0.income"),
    ({"student": "No", "balance": 1.0, "income": 1.0, "age": 3}, "body.rows.0.age"),
    ({"student": 1, "balance": 1.0, "income": 1.0}, "body.rows.0.student"),
])
def test_a_bad_classifier_field_is_422_naming_it(both, row, field):
    _, c, _ = both
    r = c.post("/v1/models/classifier/predict", json={"rows": [row]})
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text


def test_an_unknown_model_is_404_naming_what_is_served(both):
    _, c, _ = both
    r = c.post("/v1/models/churn/predict", json={"rows": [{}]})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "unknown_model" and "'churn'" in err["message"] and "classifier" in err["message"]


def test_missing_values_are_imputed_like_training(both):
    _, c, _ = both
    r = c.post("/v1/models/classifier/predict", json={"rows": [{"student": None, "balance": None, "income": 30000.0}]})
    assert r.status_code == 200, r.text
    expected = fitted_classifier().predict_proba(pd.DataFrame({"student": [np.nan], "balance": [np.nan],
                                                               "income": [30000.0]}).astype({"student": object}))
    assert r.json()["probabilities"][0] == pytest.approx(float(expected[0, 1]), abs=1e-6)


def test_events_name_each_model_and_version(both):
    b, c, sink = both
    c.post("/v1/models/classifier/predict", json=_example(c, "ClassifierPredictRequest"))
    c.post("/v1/models/forecast/predict", json=_example(c, "PredictRequest"))
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and {e["model_name"] for e in sink.events} != {
            f"mlk_local.ml.{FORECAST}", f"mlk_local.ml.{CLASSIFIER}"}:
        time.sleep(0.05)
    events = list(sink.events)  # a snapshot: the sender thread may still be appending
    by_model = {e["model_name"]: e for e in events if e["status"] == 200}
    cl = by_model[f"mlk_local.ml.{CLASSIFIER}"]
    assert cl["model_version"] == b.services["classifier"].current.version and cl["group"] == {}
    assert set(cl["inputs"][0]) == {"student", "balance", "income"} and 0 <= cl["outputs"][0] <= 1
    assert by_model[f"mlk_local.ml.{FORECAST}"]["group"]
    assert event_table(events).num_rows == len(events)  # the schema the Delta sink writes


def test_metrics_are_per_route_and_model(both):
    _, c, _ = both
    c.post("/v1/models/classifier/predict", json=_example(c, "ClassifierPredictRequest"))
    text = c.get("/metrics").text
    assert 'mlkit_requests_total{code="200",model="classifier",route="/v1/models/{name}/predict"}' in text
    assert 'mlkit_request_duration_seconds_bucket{le="0.01",model="classifier",route="/v1/models/{name}/predict"}' in text
    assert 'mlkit_model_info{model="classifier",name="mlk_local.ml.classifier_both"' in text
    assert 'mlkit_model_cache_hits_total{model="forecast"}' in text


def test_each_model_has_its_own_readiness(tmp_path):
    registered(FORECAST, 4)
    # The classifier's registered name has no champion: it is not ready, the forecast serves anyway.
    b = build(served(FORECAST, "classifier_never_trained", alias_poll_seconds=60), env="local", cache_dir=tmp_path,
              tracking_uri=sqlite_uri(registry_dir()), sink=None, auth=None)
    with TestClient(b.app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "classifier:" in r.json()["error"]["message"]
        assert "forecast:" not in r.json()["error"]["message"]
        r = c.post("/v1/models/classifier/predict", json={"rows": [{"student": "No", "balance": 1.0, "income": 1.0}]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        body = {"group": {"store": "S00", "item": "I01"}, "rows": [{"date": future()[0]}]}
        assert c.post("/v1/models/forecast/predict", json=body).status_code == 200
        models = c.get("/v1/models").json()["models"]
        assert models["forecast"]["ready"] and not models["classifier"]["ready"]


def test_the_compiled_pipeline_gives_the_models_probabilities_on_random_rows():
    """The service's numpy path against predict_proba on rows with missing values, unknown
    categories and extreme numbers."""
    from mlkit_workloads.serve.single import ClassifierModel, InputColumn

    model = fitted_classifier()
    columns = [InputColumn("student", "string"), InputColumn("balance", "number"), InputColumn("income", "number")]
    served_model = ClassifierModel(model, columns, [])
    assert served_model.compiled is not None  # the job's pipeline is one it knows
    rng = np.random.default_rng(0)
    rows = [{"student": rng.choice(["Yes", "No", None, "maybe"]),
             "balance": None if rng.random() < 0.1 else float(rng.uniform(-500, 3000)),
             "income": None if rng.random() < 0.1 else float(rng.choice([rng.uniform(0, 80000), 3.0e38]))}
            for _ in range(300)]
    frame = pd.DataFrame(rows)
    frame["student"] = frame["student"].astype(object).where(frame["student"].notna(), np.nan)
    expected = model.predict_proba(frame)[:, 1]
    assert np.allclose(served_model.probabilities(rows), expected, atol=1e-6)
