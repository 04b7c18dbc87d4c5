"""Model lifecycle in the service: LRU bounds, one load per group under concurrency, alias moves."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import httpx
import mlflow
import pytest
from fastapi.testclient import TestClient
from serve_helpers import LiveServer, future, make_bundle, register, registered, registry_dir, served, sqlite_uri

from mlkit_workloads.serve.runner import build


def _body(store="S00", item="I01"):
    return {"group": {"store": store, "item": item}, "rows": [{"date": future()[0], "promo": 1, "holiday": 0}]}


def _build(tmp_path, registered_model: str, **serving):
    return build(served(registered_model, **serving), env="local", cache_dir=tmp_path / "cache",
                 tracking_uri=sqlite_uri(registry_dir()), sink=None, auth=None)


def test_lru_keeps_the_count_bound(tmp_path):
    registered("forecast_lru", 30)
    b = _build(tmp_path, registered_model="forecast_lru", lru_max_models=5)
    with TestClient(b.app) as c:
        for i in range(12):
            assert c.post("/v1/predict", json=_body(f"S0{i // 10}", f"I0{i % 10}")).status_code == 200
            assert b.service.current.models.cache_info()["loaded"] <= 5
        info = b.service.current.models.cache_info()
        assert info["loaded"] == 5 and info["misses"] == 12 and info["evictions"] == 7
        # The most recent groups are the ones kept: asking for the last one again is a hit.
        c.post("/v1/predict", json=_body("S01", "I01"))
        assert b.service.current.models.cache_info()["hits"] == 1


def test_lru_keeps_the_byte_bound(tmp_path):
    # 40 groups: the XGBoost forecasters (even items) add up to well over the 1 MiB minimum cap (the
    # statsforecast ones are a few kB), so the byte bound, not the count, decides what is kept.
    n = 40
    registered("forecast_lru_bytes", n, rounds=120)
    b = _build(tmp_path, registered_model="forecast_lru_bytes", lru_max_bytes=2**20)
    models = b.service.current.models
    assert sum(models.group_info(k)["bytes"] for k in models.groups()) > 2 * 2**20
    # What the bound must keep, from the bundle's own sizes: the newest models whose bytes fit.
    kept: list[int] = []
    evictions = 0
    with TestClient(b.app) as c:
        for key in models.groups():
            assert c.post("/v1/predict", json=_body(*key)).status_code == 200
            kept.append(models.group_info(key)["bytes"])
            while len(kept) > 1 and sum(kept) > 2**20:
                kept.pop(0)
                evictions += 1
            info = models.cache_info()
            assert info["bytes"] <= 2**20 and info["bytes"] == sum(kept)
        assert evictions > 0 and info["loaded"] == len(kept) and info["evictions"] == evictions
        assert info["loaded"] < b.settings.lru_max_models  # the count bound was never the one that bit


def test_concurrent_first_requests_for_one_group_load_it_once(tmp_path):
    registered("forecast_concurrent", 4, rounds=120)  # an XGBoost forecaster of ~340 kB to unpickle
    b = _build(tmp_path, registered_model="forecast_concurrent")
    n = 16
    barrier, results = threading.Barrier(n), []

    def first_request():
        with httpx.Client(base_url=server.url, timeout=30) as http:
            barrier.wait()
            r = http.post("/v1/predict", json=_body("S00", "I02"))
            results.append((r.status_code, r.json().get("predictions")))

    with LiveServer(b.app) as server:
        threads = [threading.Thread(target=first_request) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert [s for s, _ in results] == [200] * n
    assert len({json.dumps(p) for _, p in results}) == 1
    info = b.service.current.models.cache_info()
    assert info["misses"] == 1 and info["hits"] == n - 1


def test_alias_move_is_served_without_restart_or_failed_requests(tmp_path):
    name = "forecast_alias_move"
    v1 = registered(name, 3, level=10.0)
    b = _build(tmp_path, registered_model=name, alias_poll_seconds=0.2)
    seen: list[tuple[int, str | None, float | None]] = []
    stop = threading.Event()

    def hammer():
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                r = http.post("/v1/predict", json=_body("S00", "I01"))
                j = r.json()
                seen.append((r.status_code, j.get("model", {}).get("version"), (j.get("predictions") or [None])[0]))

    with LiveServer(b.app) as server:
        t = threading.Thread(target=hammer)
        t.start()
        try:
            bundle = make_bundle(Path(tempfile.mkdtemp(dir=registry_dir())) / "bundle", 3, level=100.0)
            v2 = register(sqlite_uri(registry_dir()), name, bundle)  # moves `champion` to v2
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(v == v2 for _, v, _ in seen[-5:]):
                time.sleep(0.05)
        finally:
            stop.set()
            t.join(30)
    assert v2 != v1 and seen, "no requests were made"
    assert {s for s, _, _ in seen} == {200}, "a request failed during the swap"
    versions = [v for _, v, _ in seen]
    assert versions[0] == v1 and versions[-1] == v2
    assert versions == sorted(versions, key=int), "once v2 served, v1 must not come back"
    p1 = next(p for _, v, p in seen if v == v1)
    p2 = next(p for _, v, p in seen if v == v2)
    assert p2 > 5 * p1  # the new version's predictions (trained at 10x the level)
    assert b.service.swaps == 2


def test_a_bad_new_version_leaves_the_old_one_serving(tmp_path):
    name = "forecast_bad_move"
    v1 = registered(name, 3)
    b = _build(tmp_path, registered_model=name, alias_poll_seconds=60)
    bundle = make_bundle(Path(tempfile.mkdtemp(dir=registry_dir())) / "bundle", 3)
    index = json.loads((bundle / "index.json").read_text())
    index["spec"]["keys"] = ["region"]  # a model for another schema than the service is configured for
    (bundle / "index.json").write_text(json.dumps(index))
    v2 = register(sqlite_uri(registry_dir()), name, bundle)
    assert not b.service.refresh()
    assert b.service.current.version == v1
    assert f"version {v2}" in b.service.status and "still serving version " + v1 in b.service.status
    with TestClient(b.app) as c:
        assert c.post("/v1/predict", json=_body()).json()["model"]["version"] == v1
    mlflow.MlflowClient(sqlite_uri(registry_dir())).set_registered_model_alias(f"mlk_local.ml.{name}", "champion", v1)


@pytest.mark.parametrize("preload", [0, 2])
def test_preload_warms_the_first_groups(tmp_path, preload):
    registered("forecast_preload", 5)
    b = _build(tmp_path, registered_model="forecast_preload", preload_groups=preload)
    assert b.service.current.models.cache_info()["loaded"] == preload


def test_the_openapi_example_follows_the_served_version(tmp_path):
    """After a retrain on a longer history moves the alias, the example asks for the new version's next
    periods (the old ones are now in its trained history), and it is still a request that works."""
    name = "forecast_example_move"
    registered(name, 2)
    b = _build(tmp_path, registered_model=name, alias_poll_seconds=60)
    with TestClient(b.app) as c:
        before = c.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]["examples"][0]
        assert [r["date"][:10] for r in before["rows"]] == future(3)
        bundle = make_bundle(Path(tempfile.mkdtemp(dir=registry_dir())) / "bundle", 2, n_days=130)
        register(sqlite_uri(registry_dir()), name, bundle)
        assert b.service.refresh()
        spec = c.get("/openapi.json").json()["components"]["schemas"]
        after = spec["PredictRequest"]["examples"][0]
        assert [r["date"][:10] for r in after["rows"]] == future(3, start=11)
        assert spec["Row"]["examples"][0]["date"] == after["rows"][0]["date"]
        r = c.post("/v1/predict", json=after)
        assert r.status_code == 200, r.text
        assert c.post("/v1/predict", json=before).status_code == 422  # its dates are history now
