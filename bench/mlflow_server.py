"""The idle local MLflow server with MLflow's job runner on (MLflow's default) vs off (mlkit's).

    python bench/mlflow_server.py [--settle 8]

Starts each variant on a free port with its own sqlite store under a temp dir, waits until it
answers, lets it settle, then counts the processes of its session and sums their RSS and PSS
(PSS shares pages fairly between processes; RSS counts shared pages once per process). Both are
stopped at the end. Prints the ratios off / on measured in this one run and the load average.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from mlkit.local import mlflow_server  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(job_execution: bool, settle: float) -> dict:
    original = mlflow_server.server_env
    mlflow_server.server_env = lambda: original(job_execution)  # the one switch compared
    try:
        with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
            t0 = time.perf_counter()
            server = mlflow_server.ensure(Path(tmp), _port())
            ready = time.perf_counter() - t0
            try:
                time.sleep(settle)
                procs = [p for p in psutil.process_iter() if _sid(p.pid) == server.pid]
                rss = pss = 0
                for p in procs:
                    try:
                        full = p.memory_full_info()
                        rss, pss = rss + full.rss, pss + full.pss
                    except psutil.Error:
                        pass
                return {"processes": len(procs), "rss_mb": rss / 2**20, "pss_mb": pss / 2**20, "ready_s": ready}
            finally:
                mlflow_server.stop(server)
    finally:
        mlflow_server.server_env = original


def _sid(pid: int) -> int:
    try:
        return os.getsid(pid)
    except OSError:
        return -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settle", type=float, default=8.0, help="seconds to wait after the server answers")
    a = ap.parse_args()
    load_before = os.getloadavg()
    on = measure(True, a.settle)
    off = measure(False, a.settle)
    for name, m in (("job runner on (MLflow default)", on), ("job runner off (mlkit)", off)):
        print(f"{name:<32} {m['processes']:>3} processes  RSS {m['rss_mb']:7.0f} MB  PSS {m['pss_mb']:7.0f} MB  "
              f"ready in {m['ready_s']:.1f} s")
    print(f"off / on: processes {off['processes'] / on['processes']:.2f}, RSS {off['rss_mb'] / on['rss_mb']:.2f}, "
          f"PSS {off['pss_mb'] / on['pss_mb']:.2f}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
