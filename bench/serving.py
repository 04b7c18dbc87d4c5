"""Scoring service benchmark on loopback, one load-generator process.

    python bench/serving.py                 # 1000 registered groups (the issue's size)
    python bench/serving.py --groups 200    # smaller run

Groups hold forecasters trained by the forecast job's core (serve_helpers: mlforecast XGBoost with
features on even items, statsforecast on odd ones), packed as train_many packs them. A request asks
for the first period after the group's history. Measures, against the real service (uvicorn
subprocess on 127.0.0.1, inference logging to Delta on):
  * warm single-row latency p50/p99 (sequential) of an XGBoost group (a forecast with the request's
    features on every request) and of a statsforecast group (its horizon computed once per load), and
    throughput (--threads concurrent clients, XGBoost group);
  * cold first-request latency for groups never requested before (load from disk + predict);
  * RSS of the service after every group was requested once, with the LRU cap and without it;
and the same single-row load against `mlflow models serve --env-manager local` of the same
XGBoost group's forecaster (a one-group meta model, MLflow's own pyfunc server) as the anchor. Prints the ratios and the goals
(warm p99 <= 10 ms, throughput >= 2x anchor, cold <= 50 ms, RSS within the cap); writes
bench/out/serving.json. Every server binds 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # serve_helpers: real boosters, bundle, registration

ROW: dict = {}  # the first period after the test groups' history (set in main from serve_helpers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ----------------------------------------------------------------------------- the service process

def serve_main(a) -> None:
    """Child process: the real service (build + uvicorn), as `mlkit serve` runs it."""
    import uvicorn

    from mlkit_workloads.serve.runner import build
    from mlkit_workloads.serve.sinks import DeltaSink

    ss = served(a.model, lru_max_models=a.lru_models, lru_max_bytes=a.lru_bytes,
                         alias_poll_seconds=30, kubernetes={"memory_limit": "8Gi"})
    built = build(ss, env="bench", cache_dir=Path(a.work) / f"cache-{a.lru_models}",
                  tracking_uri=a.tracking, sink=DeltaSink(Path(a.work) / "inference_log"), auth=None)
    uvicorn.run(built.app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)


def start_service(work: Path, tracking: str, model: str, lru_models: int, lru_bytes: int) -> tuple:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", "--work", str(work), "--tracking", tracking, "--model", model,
           "--lru-models", str(lru_models), "--lru-bytes", str(lru_bytes), "--port", str(port)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "ab"))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz")
    return proc, url


# ----------------------------------------------------------------------------- load generation

def sequential(url: str, payloads: list[dict], path: str) -> np.ndarray:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for p in payloads:
            t = time.perf_counter()
            r = c.post(path, json=p)
            out.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
    return np.array(out) * 1000


def throughput(url: str, payload: dict, path: str, threads: int, seconds: float) -> float:
    import httpx

    counts = [0] * threads
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while time.perf_counter() < stop_at:
                if c.post(path, json=payload).status_code == 200:
                    counts[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def body(key: tuple[str, str]) -> dict:
    return {"group": {"store": key[0], "item": key[1]}, "rows": [ROW]}


# ----------------------------------------------------------------------------- the anchor

def anchor_model(work: Path, h, key: tuple[str, str], rounds: int) -> tuple[Path, dict]:
    """One group's forecaster as a one-group meta model MLflow serves itself + the equivalent body."""
    import mlflow.pyfunc

    from mlkit_workloads.forecast.meta_model import ManyModels

    bundle = h.make_bundle(work / "anchor_bundle", 1, rounds=rounds)
    path = work / "anchor_model"
    mlflow.pyfunc.save_model(str(path), python_model=ManyModels(), artifacts={"bundle": str(bundle)},
                             pip_requirements=["pandas"])
    row = {"store": key[0], "item": key[1], **ROW}
    return path, {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}


def start_anchor(model_dir: Path, work: Path) -> tuple:
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
           "--host", "127.0.0.1", "-p", str(port), "-w", "1"]
    # mlflow runs `uvicorn` by name: the venv's bin must be on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(work / "anchor.log", "ab"), cwd=work, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/ping", timeout=180)
    return proc, url


# ----------------------------------------------------------------------------- main

def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", type=int, default=1000, help="registered groups (default 1000)")
    p.add_argument("--lru-models", type=int, default=256, help="LRU cap: group models in memory")
    p.add_argument("--rounds", type=int, default=100, help="trees of the XGBoost forecasters (100: train_many's default)")
    p.add_argument("--warm", type=int, default=2000, help="sequential warm requests")
    p.add_argument("--cold", type=int, default=100, help="first requests to distinct groups")
    p.add_argument("--threads", type=int, default=4, help="concurrent clients for throughput")
    p.add_argument("--seconds", type=float, default=10, help="throughput duration per server")
    p.add_argument("--skip-uncapped", action="store_true", help="skip the RSS run without LRU cap")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--work", "--tracking", "--model", "--port", "--lru-bytes"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        a.port, a.lru_models, a.lru_bytes = int(a.port), int(a.lru_models), int(a.lru_bytes)
        return serve_main(a)

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import serve_helpers as h

    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-serving-"))
    procs: list[subprocess.Popen] = []
    res: dict = {"groups": a.groups, "lru_models": a.lru_models, "rounds": a.rounds, "threads": a.threads,
                 "load_average": os.getloadavg()}
    try:
        t0 = time.perf_counter()
        ROW.update({"date": h.future()[0] + "T00:00:00Z", "promo": 1.0, "holiday": 0.0})
        bundle = h.make_bundle(work / "bundle", a.groups, rounds=a.rounds)
        tracking = h.sqlite_uri(work)
        version = h.register(tracking, "forecast_bench", bundle)
        index = json.loads((bundle / "index.json").read_text())["groups"]
        size = max(int(g["bytes"]) for g in index.values())
        res["model_bytes"] = size
        lru_bytes = max(2**20, a.lru_models * size + 2**20)  # the count bound is the one that binds
        print(f"setup: {a.groups} groups, forecasters up to {size / 1024:.0f} kB, registered as v{version} "
              f"({time.perf_counter() - t0:.1f} s); load average {os.getloadavg()[0]:.1f}", flush=True)

        keys = h.group_keys(a.groups)
        proc, url = start_service(work, tracking, "forecast_bench", a.lru_models, lru_bytes)
        procs.append(proc)
        warm_key = keys[0]
        sequential(url, [body(warm_key)] * 50, "/v1/predict")  # warm-up: connection, group, code paths
        warm = sequential(url, [body(warm_key)] * a.warm, "/v1/predict")
        res["warm_p50_ms"], res["warm_p99_ms"] = pct(warm, 50), pct(warm, 99)
        stats_key = keys[1]
        sequential(url, [body(stats_key)] * 50, "/v1/predict")
        stats = sequential(url, [body(stats_key)] * a.warm, "/v1/predict")
        res["warm_stats_p50_ms"], res["warm_stats_p99_ms"] = pct(stats, 50), pct(stats, 99)
        cold_keys = keys[2:2 + min(a.cold, a.groups - 2)]
        cold = sequential(url, [body(k) for k in cold_keys], "/v1/predict")
        res["cold_p50_ms"], res["cold_p99_ms"], res["cold_max_ms"] = pct(cold, 50), pct(cold, 99), float(cold.max())
        res["warm_after_cold_p50_ms"] = pct(sequential(url, [body(k) for k in cold_keys], "/v1/predict"), 50)
        res["throughput_rps"] = throughput(url, body(warm_key), "/v1/predict", a.threads, a.seconds)
        stop(proc)
        print(f"service: warm p50 {res['warm_p50_ms']:.2f} ms p99 {res['warm_p99_ms']:.2f} ms, "
              f"{res['throughput_rps']:.0f} req/s; cold p50 {res['cold_p50_ms']:.1f} ms p99 {res['cold_p99_ms']:.1f} ms",
              flush=True)

        # Memory: fresh servers that only request every group once, with the cap and without it.
        def rss_run(lru_models: int, lru_bytes: int) -> dict:
            import httpx

            proc, url = start_service(work, tracking, "forecast_bench", lru_models, lru_bytes)
            procs.append(proc)
            sequential(url, [body(keys[0])] * 20, "/v1/predict")
            start = rss_mb(proc.pid)
            sequential(url, [body(k) for k in keys], "/v1/predict")
            metrics = httpx.get(f"{url}/metrics").text
            cache = {ln.split()[0]: float(ln.split()[1]) for ln in metrics.splitlines()
                     if ln.startswith("mlkit_model_cache_")}
            out = {"rss_start_mb": start, "rss_mb": rss_mb(proc.pid), "loaded": cache["mlkit_model_cache_loaded"],
                   "cache_mb": cache["mlkit_model_cache_bytes"] / 2**20}
            stop(proc)
            return out

        res["capped"] = rss_run(a.lru_models, lru_bytes)
        if not a.skip_uncapped:
            res["uncapped"] = rss_run(a.groups, a.groups * size + 2**20)
        print(f"memory: capped {res['capped']}" + (f", uncapped {res['uncapped']}" if "uncapped" in res else ""),
              flush=True)

        model_dir, anchor_body = anchor_model(work, h, warm_key, a.rounds)
        proc, url = start_anchor(model_dir, work)
        procs.append(proc)
        sequential(url, [anchor_body] * 50, "/invocations")
        anchor = sequential(url, [anchor_body] * a.warm, "/invocations")
        res["anchor_p50_ms"], res["anchor_p99_ms"] = pct(anchor, 50), pct(anchor, 99)
        res["anchor_rps"] = throughput(url, anchor_body, "/invocations", a.threads, a.seconds)
        stop(proc)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    res["throughput_vs_anchor"] = res["throughput_rps"] / res["anchor_rps"]
    res["p99_vs_anchor"] = res["warm_p99_ms"] / res["anchor_p99_ms"]
    cap, unc = res["capped"], res.get("uncapped")
    growth = cap["rss_mb"] - cap["rss_start_mb"]
    rows = [
        ("warm single-row p50 (ms)", f"{res['warm_p50_ms']:.2f}", f"anchor {res['anchor_p50_ms']:.2f}",
         f"statsforecast group p50 {res['warm_stats_p50_ms']:.2f} p99 {res['warm_stats_p99_ms']:.2f}"),
        ("warm single-row p99 (ms)", f"{res['warm_p99_ms']:.2f}", f"anchor {res['anchor_p99_ms']:.2f}",
         f"<= 10: {'met' if res['warm_p99_ms'] <= 10 else 'NOT met'}"),
        (f"throughput, {a.threads} clients (req/s)", f"{res['throughput_rps']:.0f}", f"anchor {res['anchor_rps']:.0f}",
         f"ratio {res['throughput_vs_anchor']:.2f} (>= 2: {'met' if res['throughput_vs_anchor'] >= 2 else 'NOT met'})"),
        ("cold first request p50 / p99 (ms)", f"{res['cold_p50_ms']:.1f} / {res['cold_p99_ms']:.1f}", "",
         f"<= 50: {'met' if res['cold_p99_ms'] <= 50 else 'p99 NOT met'}"),
        (f"RSS after all {a.groups} groups, cap {a.lru_models} (MB)", f"{cap['rss_mb']:.0f}",
         f"before {cap['rss_start_mb']:.0f}" + (f"; uncapped {unc['rss_mb']:.0f}" if unc else ""),
         f"loaded {cap['loaded']:.0f} <= {a.lru_models}: {'met' if cap['loaded'] <= a.lru_models else 'NOT met'}; "
         f"+{growth:.0f} MB for {cap['cache_mb']:.0f} MB of cached models (bound {lru_bytes / 2**20:.0f} MB)"
         + (f"; uncapped +{unc['rss_mb'] - unc['rss_start_mb']:.0f} MB" if unc else "")),
    ]
    print(f"\nload average at the end {os.getloadavg()}")
    for r in rows:
        print(f"{r[0]:<44} {r[1]:>14}   {r[2]:<28} {r[3]}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(res, indent=1))
    print(f"\nwrote {out / 'serving.json'}")


if __name__ == "__main__":
    main()
