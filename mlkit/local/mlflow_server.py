"""Start, reuse and stop a local MLflow tracking server (sqlite store, 127.0.0.1 only).

Started with gunicorn (``--gunicorn-opts ""``): the default uvicorn server adds ~30-40 ms to
every request here, which a run with hundreds of tracking calls feels. The server runs in its
own session so it outlives `mlkit run` and the MLflow UI stays browsable; ``stop`` ends it and
``stop_all`` ends every server a state dir started (`mlkit stop`).

MLflow's job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``) is off: mlkit never submits MLflow
jobs, and the runner's worker processes cost more memory than the server itself
(``bench/mlflow_server.py`` measures both).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from envconfig.errors import UserError


@dataclass(frozen=True)
class Server:
    url: str
    pid: int | None  # None: a server we did not start (reused as found)
    state_dir: Path
    started: bool

    @property
    def log(self) -> Path:
        return self.state_dir / "mlflow-server.log"


def _is_mlflow(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=3) as r:
            return "experiments" in json.loads(r.read() or b"{}") or r.status == 200
    except (OSError, ValueError):
        return False


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _our_server_pid(pid_file: Path, state_dir: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive and serves this state dir's store, else None.

    A pid file can outlive its server (a reboot, a kill), and another checkout's server can hold
    the port; only a live process whose command line names our sqlite file counts as ours.
    """
    import psutil

    try:
        pid = int(pid_file.read_text())
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if str(state_dir / "mlflow.db") in cmdline else None


# A tracking server that stops answering should fail a call in seconds: MLflow's defaults (7 retries,
# backoff factor 2, 120 s timeout) kept `mlkit run` waiting 257 s before its first error.
CLIENT_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def bound_client_retries() -> None:
    """Bound this process's MLflow client retries (a value the user exported wins)."""
    for k, v in CLIENT_HTTP.items():
        os.environ.setdefault(k, v)


def server_env(job_execution: bool = False) -> dict[str, str]:
    """The server's environment: ours, with MLflow's job runner off unless asked for."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if job_execution else "false"}


def ensure(state_dir: Path, port: int, timeout: float = 90.0, python: str | None = None) -> Server:
    """Reuse the server answering on ``port``, or start one with its store under ``state_dir``.

    ``python``: the interpreter whose MLflow serves (default: this one). The Spark 3.5 test leg's
    venv has the client only (mlflow-skinny, as on the cluster) and borrows the kit's server.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    pid_file = state_dir / "mlflow-server.pid"
    if _port_open(port):
        if _is_mlflow(url):
            return Server(url, _our_server_pid(pid_file, state_dir), state_dir, started=False)
        raise UserError(f"port {port} on 127.0.0.1 is taken by something that is not an MLflow server; "
                        "set local.mlflow_port in the environment file to a free port")
    log = open(state_dir / "mlflow-server.log", "ab")
    cmd = [python or sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{state_dir / 'mlflow.db'}",
           "--artifacts-destination", str(state_dir / "mlartifacts"),
           "--workers", "1", "--gunicorn-opts", ""]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=state_dir, env=server_env())
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (state_dir / "mlflow-server.log").read_text(errors="replace")[-800:]
            raise UserError(f"the MLflow server exited at start (code {proc.returncode}); end of its log:\n{tail}")
        if _is_mlflow(url):
            return Server(url, proc.pid, state_dir, started=True)
        time.sleep(0.3)
    stop(Server(url, proc.pid, state_dir, started=True))
    raise UserError(f"the MLflow server did not answer on {url} within {timeout:.0f} s; see {state_dir / 'mlflow-server.log'}")


def stop(server: Server, timeout: float = 15.0) -> None:
    """End the server's process group (ours only: it was started in its own session)."""
    if server.pid is None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(server.pid, os.WNOHANG)
    except ChildProcessError:
        pass
    (server.state_dir / "mlflow-server.pid").unlink(missing_ok=True)


def started_here(state_dir: Path) -> list[Server]:
    """Every live MLflow server whose store is this state dir's sqlite file, pid file or not.

    A server outlives the `mlkit run` that started it (on purpose: the UI stays up); a pid file can
    be lost (deleted state, a crash between start and write), so the process table is the truth.
    Session leaders only: a server's gunicorn workers go with their group.
    """
    import psutil

    state_dir = state_dir.resolve()
    store = f"sqlite:///{state_dir / 'mlflow.db'}"
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if "mlflow" in " ".join(cmd[:3]) and "server" in cmd and store in cmd:
            try:
                if os.getsid(p.pid) != p.pid:
                    continue
            except OSError:
                continue
            port = cmd[cmd.index("--port") + 1] if "--port" in cmd[:-1] else ""
            found.append(Server(f"http://127.0.0.1:{port}" if port else "", p.pid, state_dir, started=True))
    return found


def stop_all(state_dir: Path) -> list[Server]:
    """Stop every server ``started_here`` finds; returns them."""
    servers = started_here(state_dir)
    for server in servers:
        stop(server)
    (state_dir.resolve() / "mlflow-server.pid").unlink(missing_ok=True)
    return servers
