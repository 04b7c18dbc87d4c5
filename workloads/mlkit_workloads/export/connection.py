"""Where the export connects, as its drivers need it, and the one error it raises when it cannot.

The password is never a setting: it is read from ``password_file`` (the local runner's server) or
is an Entra ID access token of the job's identity (Azure Database for PostgreSQL, Entra auth only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WorkloadError
from .settings import ExportSettings

# The audience Azure Database for PostgreSQL accepts Entra ID tokens for.
ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    database: str
    user: str
    sslmode: str
    timeout: int
    password: str = field(default="", repr=False)  # never printed

    @property
    def where(self) -> str:
        return f"PostgreSQL at {self.host}:{self.port}, database {self.database!r} (user {self.user!r})"

    @property
    def jdbc_url(self) -> str:
        # verify-full against the JVM's own trust store (Azure's server certificates chain to public
        # roots it has), not pgjdbc's default ~/.postgresql/root.crt, which a cluster does not have.
        factory = "&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory" if self.sslmode == "verify-full" else ""
        return (f"jdbc:postgresql://{self.host}:{self.port}/{self.database}?sslmode={self.sslmode}{factory}"
                f"&connectTimeout={self.timeout}&ApplicationName=mlkit-export")


class ExportFailed(WorkloadError):
    """The export could not write; names the server and database. Nothing of the batch was written."""

    def __init__(self, conn: Connection, what: str, why: str):
        self.conn = conn
        super().__init__(f"export to {conn.where}: {what}: {why}; nothing of this batch was written "
                         "(the table keeps its previous rows)")


def connection(cfg: ExportSettings, token=None) -> Connection:
    """The connection of ``cfg``. ``token``: a callable giving an Entra ID access token (auth entra)."""
    missing = [f for f in ("host", "user") if not getattr(cfg, f)]
    if missing:
        raise WorkloadError(f"workloads.export: {', '.join(missing)} not set (the local runner and the stacks "
                            "set them; an environment file that turns export on elsewhere must give them)")
    conn = Connection(cfg.host, cfg.port, cfg.database, cfg.user, cfg.sslmode, cfg.connect_timeout_seconds)  # type: ignore[arg-type]
    if cfg.auth == "entra":
        if token is None:
            raise ExportFailed(conn, "auth entra", "no identity to get a token from here (Databricks service "
                               f"credential {cfg.credential!r} exists only inside a job run)")
        return Connection(**{**conn.__dict__, "password": token()})
    if not cfg.password_file:
        raise ExportFailed(conn, "auth password_file", "workloads.export.password_file is not set")
    path = Path(cfg.password_file)
    try:
        password = path.read_text().strip()
    except OSError as e:
        raise ExportFailed(conn, f"cannot read the password file {path}", e.strerror or type(e).__name__) from None
    return Connection(**{**conn.__dict__, "password": password})


@dataclass(frozen=True)
class Written:
    rows: int
    inserted: int
    updated: int
    deleted: int
    created: bool  # the table (and the view) did not exist before this export
