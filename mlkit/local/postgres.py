"""The local PostgreSQL the export task writes to: the machine's own binaries, 127.0.0.1 only.

Like the MLflow server it is started on first use, outlives `mlkit run` (a BI tool or psql can
read the predictions afterwards) and is reused by the next run; `mlkit stop` ends it. Its data
directory, password file (mode 0600, scram-sha-256 auth), port and log live under the state dir:
``<state>/postgres/``. No Unix socket: TCP on 127.0.0.1, on a port found free at first start
(and again if another process has taken it since).

PostgreSQL refuses to run as root. As root (CI, these machines) the server runs as the
unprivileged ``postgres`` user that Debian's package creates, owning only the data directory;
when a parent of the state dir is not searchable by that user (a checkout under /root, or in a
mode-700 temporary directory), it gets the one capability to traverse directories
(CAP_DAC_READ_SEARCH, via setpriv) instead of anyone changing the parents' permissions.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from envconfig.errors import UserError

BIN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "mlkit"
DATABASE = "mlkit"
RUN_AS = "postgres"  # the unprivileged user, when we are root


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    database: str
    user: str
    password_file: Path
    data_dir: Path
    started: bool  # False: found running and reused

    @property
    def log(self) -> Path:
        return self.data_dir.parent / "postgres.log"


def bindir() -> Path:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted((p for p in BIN_ROOT.glob("*/bin") if (p / "pg_ctl").exists() and p.parent.name.isdigit()),
                   key=lambda p: int(p.parent.name))
    if not found:
        raise UserError(f"no PostgreSQL server binaries under {BIN_ROOT} (pg_ctl); ./scripts/setup.sh installs "
                        "the Debian package postgresql (or turn workloads.export.enabled off)")
    return found[-1]


def _paths(state_dir: Path) -> tuple[Path, Path, Path]:
    base = state_dir.resolve() / "postgres"
    return base, base / "data", base / "password"


def _searchable_by(user: str, path: Path) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(path)],
                          capture_output=True).returncode == 0


def _as_server_user(cmd: list[str], data_dir: Path) -> list[str]:
    """``cmd`` as the user the server runs as: ourselves, or (as root) the unprivileged one."""
    if os.geteuid() != 0:
        return cmd
    import pwd

    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        raise UserError(f"PostgreSQL does not run as root and there is no {RUN_AS!r} user to run it as; "
                        "./scripts/setup.sh installs the Debian package postgresql, which creates it") from None
    if _searchable_by(RUN_AS, data_dir.parent):
        return ["runuser", "-u", RUN_AS, "--", *cmd]
    return ["setpriv", "--reuid", RUN_AS, "--regid", RUN_AS, "--init-groups",
            "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search", "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-600:]
        if log is not None and log.exists():
            tail += "\nend of its log:\n" + log.read_text(errors="replace")[-600:]
        raise UserError(f"PostgreSQL: {what} failed (exit {proc.returncode}): {tail}")


def _init(base: Path, data: Path, password_file: Path) -> None:
    """initdb with a generated superuser password (scram-sha-256 for every connection)."""
    base.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    password_file.touch(mode=0o600, exist_ok=True)
    password_file.chmod(0o600)
    password_file.write_text(password)
    data.mkdir(mode=0o700, exist_ok=True)
    init_pw = base / ".initdb-password"
    init_pw.write_text(password)
    try:
        if os.geteuid() == 0:
            shutil.chown(data, RUN_AS, RUN_AS)
            shutil.chown(init_pw, RUN_AS, RUN_AS)
        init_pw.chmod(0o600)
        _run(_as_server_user([str(bindir() / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "scram-sha-256",
                              f"--pwfile={init_pw}", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"], data),
             "initdb")
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)  # a half-initialised cluster would fail every later start
        raise
    finally:
        init_pw.unlink(missing_ok=True)


def _running(data: Path) -> bool:
    if not (data / "postmaster.pid").exists():
        return False
    proc = subprocess.run(_as_server_user([str(bindir() / "pg_ctl"), "status", "-D", str(data)], data),
                          capture_output=True, stdin=subprocess.DEVNULL)
    return proc.returncode == 0


def _running_port(data: Path) -> int | None:
    """The port in postmaster.pid (line 4) of the running server."""
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
        return None


def ensure(state_dir: Path, timeout: float = 30.0) -> Server:
    """Reuse this state dir's server, or start it (initialising the cluster on first use)."""
    base, data, password_file = _paths(state_dir)
    if not (data / "PG_VERSION").exists():
        _init(base, data, password_file)
    port_file = base / "port"
    started = False
    port = _running_port(data) if _running(data) else None
    if port is None:
        try:
            port = int(port_file.read_text())
        except (OSError, ValueError):
            port = 0
        if not port or _port_taken(port):
            port = _free_port()
        log = base / "postgres.log"
        log.touch(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(log, RUN_AS, RUN_AS)  # pg_ctl writes it as the server user
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
        _run(_as_server_user([str(bindir() / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                              "-t", str(int(timeout)), "-o", options], data), f"starting the server on 127.0.0.1:{port}",
             log)
        port_file.write_text(str(port))
        started = True
    server = Server("127.0.0.1", port, DATABASE, SUPERUSER, password_file, data, started)
    _ensure_database(server)
    return server


def _ensure_database(server: Server) -> None:
    import psycopg

    try:
        with psycopg.connect(host=server.host, port=server.port, dbname="postgres", user=server.user,
                             password=server.password_file.read_text().strip(), connect_timeout=10,
                             autocommit=True) as db:
            if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (server.database,)).fetchone() is None:
                db.execute(f'CREATE DATABASE "{server.database}"')
    except psycopg.Error as e:
        raise UserError(f"PostgreSQL at {server.host}:{server.port}: cannot create the database "
                        f"{server.database!r}: {str(e).strip().splitlines()[0]}") from None


def stop(state_dir: Path, timeout: float = 30.0) -> Server | None:
    """Stop this state dir's server if it runs (fast shutdown: sessions end, data is kept)."""
    base, data, password_file = _paths(state_dir)
    if not _running(data):
        return None
    port = _running_port(data) or 0
    _run(_as_server_user([str(bindir() / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w",
                          "-t", str(int(timeout))], data), "stopping the server")
    return Server("127.0.0.1", port, DATABASE, SUPERUSER, password_file, data, started=False)
