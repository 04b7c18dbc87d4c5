"""Deploy's database step: the platform stack's ``postgres_setup_sql`` run against the BI database.

Database roles are not Azure resources (azurerm cannot create them), so the platform stack outputs
the SQL that makes them: the export identity's role, the schema, table, staging table, view and
grants (idempotent). After the platform stack applies, deploy runs it as the server's Entra admin
group: the user is the group's name, the password an Entra ID access token of a member (the
deploying service principal or OIDC identity), TLS required.

Where the server has no public endpoint (``network.private``) a runner outside the VNet cannot
connect: the step is then *blocked*, not failed, and the report names the command to run from
inside the network. Nothing is half-applied: each database's part runs in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from envconfig.environment import EnvironmentConfig

from .azure_auth import connect_error

ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"  # Azure Database for PostgreSQL
PORT = 5432
FIRST_DATABASE = "postgres"  # pgaadauth_create_principal exists only there


@dataclass
class DatabaseOutcome:
    host: str
    status: str  # applied | blocked | failed
    detail: str = ""

    def line(self) -> str:
        return f"- BI database setup on `{self.host}`: **{self.status}**" + (f" ({self.detail})" if self.detail else "")


def script_blocks(script: str) -> list[tuple[str, str]]:
    """(database, SQL) in order: psql's ``\\connect <db>`` switches database; comment lines are dropped."""
    blocks: list[tuple[str, list[str]]] = [(FIRST_DATABASE, [])]
    for line in script.splitlines():
        text = line.strip()
        if not text or text.startswith("--"):
            continue
        if text.startswith("\\connect "):
            blocks.append((text.split(None, 1)[1].strip(), []))
        elif text.startswith("\\"):
            raise ValueError(f"setup SQL: only \\connect is understood, not {text.split()[0]!r}")
        else:
            blocks[-1][1].append(line)
    return [(db, "\n".join(lines)) for db, lines in blocks if lines]


def run_script(script: str, host: str, user: str, password: Callable[[], str], *, port: int = PORT,
               sslmode: str = "require", connect: Callable | None = None) -> list[str]:
    """Run each database's part in one transaction; returns the databases set up, in order."""
    import psycopg

    connect = connect or psycopg.connect
    done = []
    for database, sql in script_blocks(script):
        try:
            with connect(host=host, port=port, dbname=database, user=user, password=password(),
                         sslmode=sslmode, connect_timeout=10) as conn:
                conn.execute(sql)  # no parameters: the simple protocol runs the statements in order
        except psycopg.Error as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise SetupFailed(f"database {database!r} on {host}:{port} as {user!r}: {first}"
                              + (f" (set up before it: {', '.join(done)})" if done else "")) from None
        done.append(database)
    return done


class SetupFailed(Exception):
    pass


def psql_command(host: str, user: str) -> str:
    return ("terraform output -raw postgres_setup_sql > setup.sql && PGPASSWORD=$(az account get-access-token "
            f"--resource-type oss-rdbms --query accessToken -o tsv) psql \"host={host} dbname={FIRST_DATABASE} "
            f"user={user} sslmode=require\" -f setup.sql")


def entra_setup(cfg: EnvironmentConfig, host: str, script: str, credential=None) -> DatabaseOutcome:
    """The default step: as the environment's admin group, with the deployer's Entra token."""
    user = cfg.postgres.admin_group or ""
    if connect_error(host, PORT) is not None:
        return DatabaseOutcome(host, "blocked", f"{host}:{PORT} is not reachable from this runner (a private "
                               f"endpoint only answers inside the VNet); from a machine that can reach it, as a "
                               f"member of {user!r}: {psql_command(host, user)}")
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    from azure.core.exceptions import ClientAuthenticationError

    try:
        done = run_script(script, host, user, lambda: credential.get_token(ENTRA_SCOPE).token)
    except SetupFailed as e:
        return DatabaseOutcome(host, "failed", str(e))
    except ClientAuthenticationError as e:
        return DatabaseOutcome(host, "failed", f"no Entra ID token for {ENTRA_SCOPE}: {e.message}")
    return DatabaseOutcome(host, "applied", f"as {user!r}: {', '.join(done)}")
