"""Schemathesis fuzzes the service's own OpenAPI schema against the running app (uvicorn on
127.0.0.1): no 5xx, and every response conforms to the schema (status, content type, body)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import LiveServer, registered, registry_dir, served, sqlite_uri

from mlkit_workloads.serve.auth import ApiKeys
from mlkit_workloads.serve.runner import build
from mlkit_workloads.serve.sinks import DeltaSink

ST = Path(sys.executable).parent / "st"
MODEL = "forecast_fuzz"
KEY = "fuzz-key-0123456789"


def _st(url: str, seconds: int, checks: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    assert ST.is_file(), "schemathesis is not installed (pip install schemathesis==4.32.5)"
    return subprocess.run(
        [str(ST), "run", f"{url}/openapi.json", "--checks", checks, "--max-time", str(seconds), "--workers", "2",
         "--phases", "examples,coverage,fuzzing", "--seed", "1", "--report", "junit",
         "--report-dir", str(tmp_path / "report"), *extra],
        capture_output=True, text=True, timeout=seconds + 120, cwd=tmp_path)


@pytest.mark.slow
def test_fuzz_open_api_all_checks(tmp_path):
    registered(MODEL, 12, broken=(("S01", "I01"),))  # include a 503 group in the space it explores
    ss = served(MODEL, max_batch_rows=20, max_body_bytes=32 * 1024, alias_poll_seconds=60)
    b = build(ss, env="local", cache_dir=tmp_path / "cache", tracking_uri=sqlite_uri(registry_dir()),
              sink=DeltaSink(tmp_path / "log"), auth=None)
    with LiveServer(b.app) as server:
        # positive_data_acceptance is left out: one request schema serves every group, and which
        # features a row must carry depends on the group's model (XGBoost groups need them all,
        # statsforecast groups none); such a row gets a 422 naming the field. Per-model request
        # schemas (#14) would let the check run.
        r = _st(server.url, 25, "all", tmp_path, "--exclude-checks", "positive_data_acceptance")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "No issues found" in out and "5 selected" in out
    assert "Server error" not in out
    assert b.service.current.models.cache_info()["misses"] > 0  # it reached real predictions, not only 422s


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
