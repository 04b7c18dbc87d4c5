"""``workloads.export``: where the batch predictions go for BI (a PostgreSQL table and a view).

The local runner fills the connection (its own PostgreSQL on 127.0.0.1, password from a file
under the state dir); the stacks fill it for cloud environments (the flexible server's host,
Entra ID token of the job's identity). A password is never a setting: ``password_file`` names a
file, ``entra`` asks the identity for a token.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..strict import Strict

# Unquoted PostgreSQL identifiers (lower case, at most 63 bytes): what a BI tool's user types.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ExportSettings(Strict):
    enabled: bool = False
    """Run the export task (after score): predictions into ``schema.table`` and the view."""
    host: str | None = None
    """Server host name (the runner or the stacks set it: 127.0.0.1 locally, the flexible server's FQDN)."""
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "mlkit"
    """Database of the predictions table."""
    db_schema: str = Field(default="predictions", alias="schema")
    """Schema of the table and the view (the job's role may write there only)."""
    table: str = "forecast_predictions"
    """The predictions table: one row per group, date, model name and version."""
    view: str = "forecast_latest_champion"
    """The view BI reads: the rows of the most recently exported (champion) version per model."""
    user: str | None = None
    """Database role the job logs in as (locally the runner's; in the cloud the job identity's role name)."""
    auth: Literal["password_file", "entra"] = "password_file"
    """password_file: the password is the content of ``password_file``; entra: an Entra ID access token of
    the job's identity (Databricks service credential ``credential``) is the password."""
    password_file: str | None = None
    """A file holding the password (auth password_file; the local runner writes one, mode 0600)."""
    credential: str | None = None
    """auth entra on Databricks: the Unity Catalog service credential whose identity gets the token."""
    sslmode: Literal["disable", "require", "verify-full"] = "verify-full"
    """TLS to the server; the local runner sets disable (127.0.0.1 only)."""
    driver: Literal["psycopg", "spark_jdbc"] = "psycopg"
    """psycopg: one connection from the driver (local); spark_jdbc: Spark's JDBC writer (Databricks)."""
    connect_timeout_seconds: int = Field(default=10, ge=1, le=300)
    """An unreachable server fails the task after this long, naming host and database."""

    model_config = {**Strict.model_config, "populate_by_name": True}

    @field_validator("database", "db_schema", "table", "view")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not IDENTIFIER.fullmatch(v):
            raise ValueError(f"{v!r} is not a plain PostgreSQL name (lower-case letters, digits, _; at most 63)")
        return v

    @model_validator(mode="after")
    def _complete(self) -> "ExportSettings":
        if self.table == self.view:
            raise ValueError(f"table and view are both {self.table!r}: give the view its own name")
        if self.enabled and self.auth == "entra" and self.password_file:
            raise ValueError("auth entra takes no password_file (the identity's token is the password)")
        return self
