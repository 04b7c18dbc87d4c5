"""Azure Database for PostgreSQL flexible server: the BI database of batch predictions.

Secure by default: Entra ID authentication only (password auth off, so no administrator login or
password exists anywhere), TLS required (``require_secure_transport`` on, TLS 1.2 minimum),
public network access off where the environment is private (then reached through a private
endpoint and the ``privatelink.postgres.database.azure.com`` zone), an Entra group as the
server's administrator.

Database roles are not Azure resources: azurerm cannot create them, and the provider that can
(cyrilgdn/postgresql) would need a connection from the Terraform runner to the server plus a
download this project cannot make. So :meth:`PredictionsDatabase.setup_sql` generates the SQL
(role of the export identity via ``pgaadauth_create_principal``, schema, table, staging table,
view, grants) and the stack outputs it: a deployment step run once by a member of the admin
group (README: BI database). The export identity gets exactly SELECT/INSERT/UPDATE/DELETE on the
two tables of its schema (DELETE: a re-run replaces its version's rows) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cdktn import TerraformResourceLifecycle
from cdktn_provider_azurerm.postgresql_flexible_server import (
    PostgresqlFlexibleServer,
    PostgresqlFlexibleServerAuthentication,
    PostgresqlFlexibleServerHighAvailability,
)
from cdktn_provider_azurerm.postgresql_flexible_server_active_directory_administrator import (
    PostgresqlFlexibleServerActiveDirectoryAdministrator,
)
from cdktn_provider_azurerm.postgresql_flexible_server_configuration import PostgresqlFlexibleServerConfiguration
from cdktn_provider_azurerm.postgresql_flexible_server_database import PostgresqlFlexibleServerDatabase
from constructs import Construct
from mlkit_workloads.export import sql

from ..errors import StackInputError

# Server parameters that make TLS mandatory (Azure's defaults today, pinned so drift shows a change).
TLS_CONFIGURATION = {"require_secure_transport": "on", "ssl_min_protocol_version": "TLSv1.2"}
PRIVATE_ENDPOINT_SUBRESOURCE = "postgresqlServer"


@dataclass(frozen=True)
class DatabaseRole:
    """An Entra principal that becomes a database role (its name is its Entra display name)."""

    name: str
    privileges: tuple[str, ...]
    on: Literal["tables", "view"]


@dataclass(frozen=True)
class PredictionsDatabaseProps:
    server_name: str
    resource_group_name: str
    location: str
    tenant_id: str
    admin_group_name: str
    admin_group_object_id: str
    table: sql.TableSpec
    database_name: str = "mlkit"
    version: str = "16"
    sku_name: str = "B_Standard_B1ms"
    storage_mb: int = 32768
    backup_retention_days: int = 7
    geo_redundant_backup: bool = False
    high_availability: Literal["off", "SameZone", "ZoneRedundant"] = "off"
    # False where the environment is private: only the private endpoint reaches the server.
    public_network_access: bool = False
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if int(self.version) < 15:
            raise StackInputError("postgres.version", f"{self.version} has no MERGE; the export needs 15 or later")


class PredictionsDatabase(Construct):
    def __init__(self, scope: Construct, id_: str, props: PredictionsDatabaseProps):
        super().__init__(scope, id_)
        self.props = props
        self._roles: list[DatabaseRole] = []
        self.server = PostgresqlFlexibleServer(
            self, "server",
            name=props.server_name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            version=props.version,
            sku_name=props.sku_name,
            storage_mb=props.storage_mb,
            backup_retention_days=props.backup_retention_days,
            geo_redundant_backup_enabled=props.geo_redundant_backup,
            high_availability=(PostgresqlFlexibleServerHighAvailability(mode=props.high_availability)
                               if props.high_availability != "off" else None),
            # Entra ID only: azurerm refuses administrator_login/password with password auth off.
            authentication=PostgresqlFlexibleServerAuthentication(
                active_directory_auth_enabled=True, password_auth_enabled=False, tenant_id=props.tenant_id),
            public_network_access_enabled=props.public_network_access,
            tags=props.tags,
            # Azure picks the zone on create and may move it on failover: do not fight it.
            lifecycle=TerraformResourceLifecycle(
                ignore_changes=["zone", "high_availability[0].standby_availability_zone"]),
        )
        self.admin = PostgresqlFlexibleServerActiveDirectoryAdministrator(
            self, "entra-admin",
            server_name=self.server.name, resource_group_name=props.resource_group_name,
            tenant_id=props.tenant_id, object_id=props.admin_group_object_id,
            principal_name=props.admin_group_name, principal_type="Group")
        self.configuration = {
            name: PostgresqlFlexibleServerConfiguration(self, f"config-{name}", name=name, server_id=self.server.id,
                                                        value=value)
            for name, value in TLS_CONFIGURATION.items()}
        self.database = PostgresqlFlexibleServerDatabase(
            self, "database", name=props.database_name, server_id=self.server.id, charset="UTF8",
            collation="en_US.utf8")

    @property
    def id(self) -> str:
        return self.server.id

    @property
    def fqdn(self) -> str:
        return self.server.fqdn

    def grant_writer(self, role_name: str) -> DatabaseRole:
        """The export identity: read/write rows of the predictions and staging tables, nothing else."""
        return self._grant(DatabaseRole(role_name, ("SELECT", "INSERT", "UPDATE", "DELETE"), "tables"))

    def grant_reader(self, role_name: str) -> DatabaseRole:
        """BI readers (an Entra group): SELECT on the view of the latest champion."""
        return self._grant(DatabaseRole(role_name, ("SELECT",), "view"))

    def _grant(self, role: DatabaseRole) -> DatabaseRole:
        if any(r.name == role.name for r in self._roles):
            raise StackInputError("postgres", f"database role {role.name!r} is granted twice")
        self._roles.append(role)
        return role

    def setup_sql(self) -> str:
        """The deployment step's SQL (psql as the admin group, database ``postgres`` then the export's)."""
        return setup_sql(self.props.database_name, self.props.table, tuple(self._roles))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def setup_sql(database: str, spec: sql.TableSpec, roles: tuple[DatabaseRole, ...]) -> str:
    """Roles first (``pgaadauth_create_principal`` exists only in the ``postgres`` database), then
    the schema objects and the grants in the predictions database. Idempotent: safe to re-run."""
    lines = ["-- mlkit: BI database setup. Run as a member of the server's Entra admin group:",
             f"--   psql \"host=<fqdn> dbname=postgres user=<admin group> sslmode=verify-full\" -f <this file>",
             "-- (password: an Entra ID access token, `az account get-access-token --resource-type oss-rdbms`)"]
    for r in roles:
        lines.append(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(r.name)}) THEN "
                     f"PERFORM pgaadauth_create_principal({_literal(r.name)}, false, false); END IF; END $$;")
    lines += [f"\\connect {database}", sql.create_schema(spec) + ";", sql.create_table(spec) + ";",
              sql.create_staging_table(spec) + ";", sql.create_view(spec) + ";",
              # Nobody but the grants below: PostgreSQL 15 already drops CREATE on public for PUBLIC.
              f"REVOKE ALL ON SCHEMA {sql.quote(spec.schema)} FROM PUBLIC;"]
    for r in roles:
        who = sql.quote(r.name)
        lines.append(f"GRANT USAGE ON SCHEMA {sql.quote(spec.schema)} TO {who};")
        objects = f"{spec.target}, {spec.staging}" if r.on == "tables" else spec.view_name
        lines.append(f"GRANT {', '.join(r.privileges)} ON {objects} TO {who};")
    return "\n".join(lines) + "\n"
