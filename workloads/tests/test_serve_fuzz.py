"""Schemathesis fuzzes the service's own OpenAPI schema against the running app (uvicorn on
127.0.0.1): no 5xx, and every response conforms to the schema (status, content type, body)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import LiveServer, registered, registered_classifier, registry_dir, served, sqlite_uri

from mlkit_workloads.serve.auth import ApiKeys
from mlkit_workloads.serve.runner import build
from mlkit_workloads.serve.sinks import DeltaSink

ST = Path(sys.executable).parent / "st"
MODEL, CLASSIFIER = "forecast_fuzz", "classifier_fuzz"
KEY = "fuzz-key-0123456789"


def _st(url: str, seconds: int, checks: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    assert ST.is_file(), "schemathesis is not installed (pip install schemathesis==4.32.5)"
    # One worker: with two, hypothesis describing a filter lambda from two threads at once has hit
    # CPython 3.11's "AST constructor recursion depth mismatch" (a runtime error of the tool, not of the API).
    return subprocess.run(
        [str(ST), "run", f"{url}/openapi.json", "--checks", checks, "--max-time", str(seconds), "--workers", "1",
         "--phases", "examples,coverage,fuzzing", "--seed", "1", "--report", "junit",
         "--report-dir", str(tmp_path / "report"), *extra],
        capture_output=True, text=True, timeout=seconds + 120, cwd=tmp_path)


# A forecast row is valid for a group only at the 1 to horizon periods after that group's trained
# history (and, for a model with features, with their values): no JSON Schema of one route can say
# that per group, so there a schema-valid row may get the model's 422 `cannot_forecast`. Every other
# operation (the classifier's predict included: any schema-valid row is scored) must accept valid data.
#
# A batch over the configured rows is out of the schema (maxItems) and the service answers it with
# its documented 413 `batch_too_large`, which schemathesis' default rejection statuses leave out.
FORECAST_ROWS = """
[checks]
negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415",
                                             "422", "428", "429", "5xx"]

[[operations]]
include-path-regex = "^/v1/(models/forecast/)?predict$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "422", "5xx"]
"""


@pytest.mark.slow
def test_fuzz_open_api_all_checks(tmp_path):
    registered(MODEL, 12, broken=(("S01", "I01"),))  # include a 503 group in the space it explores
    registered_classifier(CLASSIFIER)
    ws = served(MODEL, CLASSIFIER, max_batch_rows=20, max_body_bytes=32 * 1024, alias_poll_seconds=60)
    b = build(ws, env="local", cache_dir=tmp_path / "cache", tracking_uri=sqlite_uri(registry_dir()),
              sink=DeltaSink(tmp_path / "log"), auth=None)
    (tmp_path / "schemathesis.toml").write_text(FORECAST_ROWS)
    with LiveServer(b.app) as server:
        r = _st(server.url, 35, "all", tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "No issues found" in out and "10 selected" in out, out[-3000:]
    assert "Server error" not in out
    assert b.service.current.models.cache_info()["misses"] > 0  # it reached real predictions, not only 422s
    scored = b.app.state.metrics.requests.labels("/v1/models/{name}/predict", "classifier", "200")._value.get()
    assert scored > 0  # and scored classifier rows


@pytest.mark.slow
def test_fuzz_with_auth_no_server_errors_and_auth_enforced(tmp_path):
    registered(MODEL, 12, broken=(("S01", "I01"),))
    auth = ApiKeys(lambda: KEY, refresh_seconds=3600)
    auth.refresh()
    ss = served(MODEL, alias_poll_seconds=60)
    b = build(ss, env="dev", cache_dir=tmp_path / "cache", tracking_uri=sqlite_uri(registry_dir()),
              sink=None, auth=auth)
    with LiveServer(b.app) as server:
        r = _st(server.url, 10, "not_a_server_error,status_code_conformance,ignored_auth", tmp_path,
                "-H", f"Authorization: Bearer {KEY}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "No issues found" in out
