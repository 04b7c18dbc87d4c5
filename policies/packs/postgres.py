"""azure-postgres: the BI database (Azure Database for PostgreSQL flexible server).

Entra ID only, TLS always, and no public endpoint where the environment is private. Absent
attributes take azurerm's defaults: password auth on, public network access on (so both rules
ask for the explicit value); ``require_secure_transport`` is on unless a configuration turns it off.
"""

from __future__ import annotations

from typing import Iterable

from ..model import Context, Element
from ..values import get, is_false, is_ref, is_true, show
from .pack import Pack

PACK = Pack("azure-postgres")
rule = PACK.rule

PSQL = ("azurerm_postgresql_flexible_server",)
PSQL_CONFIG = ("azurerm_postgresql_flexible_server_configuration",)
TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


@rule("MLK-PG-001", "error", "PostgreSQL takes Entra ID tokens only (password auth off)", types=PSQL,
      why="A database password is a long-lived shared secret that ends up in notebooks and connection strings; "
          "Entra ID tokens are short-lived, per identity, and revoked with the identity.",
      fix="Set authentication { active_directory_auth_enabled = true, password_auth_enabled = false } and no "
          "administrator_login/administrator_password; give the server an Entra admin group.")
def pg_entra_only(el: Element, ctx: Context) -> Iterable[str]:
    password = get(el.config, "authentication.password_auth_enabled")
    entra = get(el.config, "authentication.active_directory_auth_enabled")
    if not (is_false(password) or is_ref(password)):
        yield f"authentication.password_auth_enabled is {show(password)}; passwords stay usable (azurerm default: true)"
    if not (is_true(entra) or is_ref(entra)):
        yield f"authentication.active_directory_auth_enabled is {show(entra)}; Entra ID tokens are refused"
    for attr in ("administrator_login", "administrator_password", "administrator_password_wo"):
        if el.config.get(attr) is not None:
            yield f"{attr} is set: a password administrator exists next to Entra ID"


@rule("MLK-PG-002", "error", "PostgreSQL has no public endpoint in a private environment", types=PSQL,
      checkov=("CKV2_AZURE_57",),
      why="In a private environment the clusters reach the server through its private endpoint; a public "
          "endpoint only adds a way in from the internet.",
      fix="Set public_network_access_enabled = false and reach it through the private endpoint "
          "(network.private gives it one).")
def pg_private(el: Element, ctx: Context) -> Iterable[str]:
    if not ctx.cfg.network.private:
        return
    v = el.config.get("public_network_access_enabled")
    if not (is_false(v) or is_ref(v)):
        yield f"public_network_access_enabled is {show(v)} in a private environment (azurerm default: true)"


@rule("MLK-PG-003", "error", "PostgreSQL requires TLS 1.2 or newer", types=PSQL_CONFIG,
      why="Without require_secure_transport clients may connect in plain text, and tokens would cross the "
          "network readable; TLS 1.0/1.1 are weak.",
      fix='Keep require_secure_transport = "on" and ssl_min_protocol_version = "TLSv1.2" (or TLSv1.3).')
def pg_tls(el: Element, ctx: Context) -> Iterable[str]:
    name, value = el.config.get("name"), el.config.get("value")
    if is_ref(value):
        return
    if name == "require_secure_transport" and str(value).lower() not in ("on", "true", "1"):
        yield f"require_secure_transport is {show(value)}; clients may connect without TLS"
    if name == "ssl_min_protocol_version" and value not in TLS_VERSIONS:
        yield f"ssl_min_protocol_version is {show(value)}; it must be TLSv1.2 or newer"
