"""The scoring API end to end (in-process ASGI client): every route and every error code."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import LAST, calendar_bundle, future, register, registered, registry_dir, served, sqlite_uri

from mlkit_workloads.forecast.meta_model import GroupModels
from mlkit_workloads.serve.auth import ApiKeys
from mlkit_workloads.serve.runner import build
from mlkit_workloads.serve.sinks import DeltaSink

MODEL = "forecast_api"
BROKEN = ("S01", "I05")
SETTINGS = served(MODEL, max_batch_rows=50, max_body_bytes=16 * 1024, alias_poll_seconds=60)


NEXT = future(3)  # the first three periods after every test group's last trained one


def _row(date=NEXT[0], promo=1, holiday=0):
    return {"date": date, "promo": promo, "holiday": holiday}


def _body(store="S00", item="I01", rows=None):
    return {"group": {"store": store, "item": item}, "rows": [_row()] if rows is None else rows}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    registered(MODEL, 20, broken=(BROKEN,))
    tmp = tmp_path_factory.mktemp("api")
    b = build(SETTINGS, env="local", cache_dir=tmp / "cache", tracking_uri=sqlite_uri(registry_dir()),
              sink=DeltaSink(tmp / "log"), auth=None)
    yield b
    b.service.stop()


@pytest.fixture(scope="module")
def client(built):
    with TestClient(built.app) as c:
        yield c


@pytest.mark.parametrize("item", ["I00", "I01"])  # an XGBoost group (uses features), a statsforecast one
def test_predict_matches_the_meta_model_with_intervals(client, built, item):
    rows = [_row(d, promo=p) for d, p in zip(NEXT, (1, 0, 1))]
    r = client.post("/v1/predict", json=_body(item=item, rows=rows))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": f"mlk_local.ml.{MODEL}", "version": built.service.current.version}
    assert body["group"] == {"store": "S00", "item": item}
    assert body["model_type"] == ("xgboost" if item == "I00" else built.service.current.models.group_info(
        ("S00", item))["model_type"]) and body["model_type"] in ("xgboost", "auto_ets", "seasonal_naive")
    # Same numbers as the meta model's own routing on the same rows (a fresh instance, own cache).
    models = GroupModels(built.service.current.models.directory)
    req = pd.DataFrame({"store": "S00", "item": item, "date": pd.to_datetime(NEXT), "promo": [1.0, 0.0, 1.0],
                        "holiday": 0.0})
    expected = models.predict(req)
    assert list(expected.error) == ["", "", ""]
    assert np.allclose(body["predictions"], expected.prediction, rtol=1e-6)
    assert set(body["intervals"]) == {"lo_80", "hi_80", "lo_95", "hi_95"}
    for band, values in body["intervals"].items():
        assert np.allclose(values, expected[band], rtol=1e-6)
    p, iv = np.array(body["predictions"]), {k: np.array(v) for k, v in body["intervals"].items()}
    assert (iv["lo_95"] <= iv["lo_80"]).all() and (iv["lo_80"] <= p).all() and (p <= iv["hi_80"]).all()
    assert (iv["hi_80"] <= iv["hi_95"]).all()
    assert r.headers["x-request-id"] == body["request_id"]


def test_features_move_an_xgboost_forecast_and_a_repeat_request_is_the_same(client):
    on = client.post("/v1/predict", json=_body(item="I00", rows=[_row(promo=1)])).json()["predictions"][0]
    off = client.post("/v1/predict", json=_body(item="I00", rows=[_row(promo=0)])).json()["predictions"][0]
    assert on > 2 * off  # trained on sales = level x (1 + 2 promo): the forecast follows the promo
    rows = [_row(NEXT[0]), _row(NEXT[1] + "T00:00:00Z", promo=0), _row(NEXT[2], promo=1)]
    r = client.post("/v1/predict", json=_body(item="I00", rows=rows), headers={"X-Request-ID": "req-123"})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 3 and all(isinstance(p, float) and math.isfinite(p) for p in preds)
    assert preds[0] == pytest.approx(on) and r.json()["request_id"] == "req-123"
    # A statsforecast group needs no features: rows with only the date are forecast.
    r = client.post("/v1/predict", json=_body(item="I01", rows=[{"date": d} for d in NEXT]))
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3


@pytest.mark.parametrize("item, rows, field, text", [
    ("I01", [{"date": LAST.date().isoformat()}], "body.rows.0.date",
     f"group S00/I01: {LAST.date()} is not after the last trained period {LAST.date()}"),
    ("I01", [{"date": NEXT[0]}, {"date": future(1, start=8)[0]}], "body.rows.1.date",
     f"is 8 periods after the last trained period {LAST.date()} (at most 7)"),
    ("I01", [{"date": NEXT[0] + "T12:00:00Z"}], "body.rows.0.date", "is not a D period"),
    ("I00", [_row(), {"date": NEXT[1], "promo": 1}], "body.rows.1.holiday",
     "group S00/I00 (xgboost) forecasts with promo, holiday: give their values in every row"),
    ("I00", [_row(NEXT[2])], "body.rows", f"no future values of promo, holiday for 2 period(s) from {NEXT[0]}"),
])
def test_a_row_the_model_cannot_forecast_is_422_naming_it(client, item, rows, field, text):
    r = client.post("/v1/predict", json=_body(item=item, rows=rows))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "cannot_forecast" and err["field"] == field and err["group"] == {"store": "S00", "item": item}
    assert err["message"].startswith(field + ": ") and text in err["message"], err["message"]


def test_an_old_bundle_of_calendar_boosters_still_serves(tmp_path):
    name = "forecast_api_calendar"
    register(sqlite_uri(registry_dir()), name, calendar_bundle(tmp_path / "bundle", 2))
    b = build(served(name, alias_poll_seconds=60), env="local", cache_dir=tmp_path / "cache", tracking_uri=sqlite_uri(registry_dir()),
              sink=None, auth=None)
    with TestClient(b.app) as c:
        r = c.post("/v1/predict", json=_body(item="I01", rows=[_row("2024-06-01"), _row("2024-06-02", promo=0)]))
    assert r.status_code == 200, r.text
    expected = GroupModels(b.service.current.models.directory).predict_group(
        ("S00", "I01"), pd.DataFrame({"date": pd.to_datetime(["2024-06-01", "2024-06-02"], utc=True),
                                      "promo": [1, 0], "holiday": [0, 0]}))
    assert np.allclose(r.json()["predictions"], expected, rtol=1e-6) and r.json()["intervals"] == {}


def test_unknown_group_is_404_naming_it(client):
    r = client.post("/v1/predict", json=_body(store="S77", item="I01"))
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "unknown_group" and err["group"] == {"store": "S77", "item": "I01"}
    assert "store='S77'" in err["message"]


@pytest.mark.parametrize("body, field", [
    (_body(rows=[_row(promo="lots")]), "body.rows.0.promo"),
    (_body(rows=[_row(promo=True)]), "body.rows.0.promo"),
    (_body(rows=[_row(holiday=1e300)]), "body.rows.0.holiday"),
    (_body(rows=[_row(), _row(date="yesterday")]), "body.rows.1.date"),
    (_body(rows=[_row(date="9999-01-01")]), "body.rows.0.date"),
    (_body(rows=[{**_row(), "holidy": 1}]), "body.rows.0.holidy"),
    ({"group": {"store": "S00"}, "rows": [_row()]}, "body.group.item"),
    ({"group": {"store": "S00", "item": 5}, "rows": [_row()]}, "body.group.item"),
    (_body(rows=[]), "body.rows"),
    ({"rows": [_row()]}, "body.group"),
])
def test_bad_body_is_422_naming_the_field(client, body, field):
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["message"].startswith(field + ":")


def test_body_that_is_not_json_is_422(client):
    r = client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"]


def test_group_whose_model_fails_to_load_is_503_and_others_keep_serving(client):
    r = client.post("/v1/predict", json=_body(*BROKEN))
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "group_unavailable" and err["group"] == {"store": "S01", "item": "I05"}
    assert "store='S01', item='I05'" in err["message"]
    assert client.post("/v1/predict", json=_body("S01", "I04")).status_code == 200
    assert client.post("/v1/predict", json=_body(*BROKEN)).status_code == 503  # still this group only


def test_batch_over_the_limit_is_413(client):
    r = client.post("/v1/predict", json=_body(rows=[_row()] * (SETTINGS.serving.max_batch_rows + 1)))
    assert r.status_code == 413 and r.json()["error"]["field"] == "rows"
    assert client.post("/v1/predict", json=_body(rows=[_row()] * SETTINGS.serving.max_batch_rows)).status_code == 200


def test_body_over_the_limit_is_413_with_or_without_content_length(client):
    big = json.dumps(_body(rows=[_row()] * 400)).encode()
    assert len(big) > SETTINGS.serving.max_body_bytes
    r = client.post("/v1/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: transfer-encoding chunked
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    small = json.dumps(_body()).encode()
    r = client.post("/v1/predict", content=iter([small[:10], small[10:]]), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_model_info(client, built):
    r = client.get("/v1/models/S00/I03")
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["version"] == built.service.current.version and info["alias"] == "champion"
    assert info["trained_at"].startswith("2024-05-01") and info["metrics"]["wape"] == pytest.approx(0.103)
    assert info["last_ts"] == LAST.isoformat() and info["first_ts"] == "2024-01-01T00:00:00"
    assert (info["frequency"], info["horizon"], info["season_length"], info["backtest_windows"]) == ("D", 7, 7, 3)
    assert info["levels"] == [80, 95] and info["model_type"] in ("auto_ets", "seasonal_naive")
    assert info["metrics"]["mase"] > 0 and 0 <= info["metrics"]["coverage_95"] <= 1  # the backtest's
    assert client.get("/v1/models/S00/I02").json()["model_type"] == "xgboost"
    r = client.get("/v1/models/S99/I03")
    assert r.status_code == 404 and "S99" in r.json()["error"]["message"]
    r = client.get("/v1/models/S00/I01/extra")
    assert r.status_code == 422 and r.json()["error"]["field"] == "path.group"
    r = client.get("/v1/models/S00")  # one part: a model's name, and no model is called that
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_model"


def test_health_and_readiness(client, built):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["models"]["forecast"]["version"] == built.service.current.version


def test_not_ready_without_a_champion(tmp_path):
    registered("forecast_api_unpromoted", 2)  # has a champion; ask for an alias nobody set
    ss = served("forecast_api_unpromoted", alias="challenger", alias_poll_seconds=60)
    b = build(ss, env="local", cache_dir=tmp_path, tracking_uri=sqlite_uri(registry_dir()),
              sink=None, auth=None)
    with TestClient(b.app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "challenger" in r.json()["error"]["message"]
        r = c.post("/v1/predict", json=_body())
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert c.get("/healthz").status_code == 200  # alive: the kubelet must not restart it for this


def test_openapi_examples_come_from_the_feature_schema_and_work(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["Row"]["properties"]) == {"date", "promo", "holiday"}
    assert set(schemas["Group"]["properties"]) == {"store", "item"}
    example = schemas["PredictRequest"]["examples"][0]
    assert example["group"] == {"store": "S00", "item": "I00"}  # a real group of the served version
    # Its first periods after the last trained one, with the features its XGBoost model needs.
    assert [row["date"] for row in example["rows"]] == [f"{d}T00:00:00Z" for d in NEXT]
    r = client.post("/v1/predict", json=example)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 3 and len(r.json()["intervals"]["lo_95"]) == 3
    responses = spec["paths"]["/v1/predict"]["post"]["responses"]
    assert {"200", "404", "413", "422", "503"} <= set(responses)


def test_metrics_count_requests_and_cache(client):
    client.post("/v1/predict", json=_body(store="S42"))
    text = client.get("/metrics").text
    assert 'mlkit_requests_total{code="404",model="forecast",route="/v1/predict"}' in text
    assert "mlkit_model_cache_loaded " in text and 'outcome="delivered",sink="delta"' in text


# --------------------------------------------------------------------------- auth (cloud mode)

KEY = "k-0123456789abcdef"


@pytest.fixture()
def vault():
    """What the Key Vault secret holds; tests change it to rotate keys or break the vault."""
    return {"value": KEY + "\n# a comment\n" + "k-second-key-0000000", "fail": False}


def _auth_app(tmp_path, vault):
    def fetch():
        if vault["fail"]:
            raise PermissionError("403 Forbidden from the vault")
        return vault["value"]

    auth = ApiKeys(fetch, refresh_seconds=3600, describe="secret 'scoring-api-keys'")
    auth.refresh()
    b = build(SETTINGS, env="dev", cache_dir=tmp_path, tracking_uri=sqlite_uri(registry_dir()),
              sink=None, auth=auth)
    return b, auth


def test_cloud_mode_requires_a_bearer_key(tmp_path, vault):
    b, _ = _auth_app(tmp_path, vault)
    with TestClient(b.app) as c:
        r = c.post("/v1/predict", json=_body())
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/predict", json=_body(), headers={"Authorization": "Bearer wrong-key-000000000"}).status_code == 401
        assert c.post("/v1/predict", json=_body(), headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/v1/models/S00/I01", headers={"Authorization": "Bearer k-second-key-0000000"}).status_code == 200
        assert c.get("/metrics").status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200  # probes stay open
        assert "bearer" in json.dumps(c.get("/openapi.json").json()["components"]["securitySchemes"]).lower()


def test_rotated_keys_apply_on_refresh_and_a_broken_vault_keeps_the_last_good_keys(tmp_path, vault):
    b, auth = _auth_app(tmp_path, vault)
    with TestClient(b.app) as c:
        vault["value"] = "k-rotated-key-111111"
        auth.refresh()
        assert c.get("/v1/models/S00/I01", headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
        assert c.get("/v1/models/S00/I01", headers={"Authorization": "Bearer k-rotated-key-111111"}).status_code == 200
        vault["fail"] = True
        assert not auth.refresh() and "403" in auth.error
        assert c.get("/v1/models/S00/I01", headers={"Authorization": "Bearer k-rotated-key-111111"}).status_code == 200


def test_no_keys_ever_read_fails_closed(tmp_path, vault):
    vault["fail"] = True
    b, _ = _auth_app(tmp_path, vault)
    with TestClient(b.app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "scoring-api-keys" in r.json()["error"]["message"]
        assert c.post("/v1/predict", json=_body(), headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
