"""``postgres``: the BI database the forecast job's export task writes batch predictions to
(Azure Database for PostgreSQL flexible server). Optional per environment; the values are checked
against what azurerm accepts (its validate functions), so a typo fails at load, not at apply."""

from __future__ import annotations

import re
from typing import Literal

from mlkit_workloads.strict import Strict
from pydantic import Field, field_validator

from .errors import FieldProblem

# azurerm validate.FlexibleServerSkuName (burstable, general purpose, memory optimised tiers).
SKU_PATTERN = (r"(B_Standard_B((1|2|4|8|12|16|20)ms|2s))|(GP_Standard_D(((2|4|8|16|32|48|64)s_v3)|"
               r"((2|4|8|16|32|48|64)ds_v4)|((2|4|8|16|32|48|64|96)ds_v5)|((2|4|8|16|32|48|64|96)ds_v6)|"
               r"((2|4|8|16|32|48|64|96)ads_v5)|(C(2|4|8|16|32|48|64|96)ads_v5)))|(MO_Standard_E((((2|4|8|16|20|32|48|64)s)_v3)|"
               r"((2|4|6|8|16|20|32|48|64)ds_v4)|((2|4|8|16|20|32|48|64|96)ds_v5)|((2|4|8|16|32|48|64|96)ds_v6)|"
               r"((2|4|8|16|32|48|64|96)ads_v5)|(C(2|4|8|16|20|32|48|64|96)(ads|as)_v5)))")
# azurerm's storage_mb IntInSlice.
STORAGE_MB = (32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4193280, 4194304, 8388608, 16777216, 33553408)


class Postgres(Strict):
    enabled: bool = False
    """Provision the flexible server, its database and (where network.private) its private endpoint."""
    version: Literal["14", "15", "16", "17"] = "16"
    """PostgreSQL major version (MERGE needs 15 or later; 14 is refused with the reason)."""
    sku_name: str = "B_Standard_B1ms"
    """Compute tier and size as azurerm names it (B_Standard_B1ms, GP_Standard_D2ds_v5, ...)."""
    storage_mb: int = 32768
    """One of the sizes Azure offers (32768 = 32 GiB ... 33553408)."""
    backup_retention_days: int = Field(default=7, ge=7, le=35)
    geo_redundant_backup: bool = False
    high_availability: Literal["off", "SameZone", "ZoneRedundant"] = "off"
    admin_group: str | None = None
    """Entra ID group (a key of principals.groups) that administers the server: runs the setup SQL."""
    bi_readers_group: str | None = None
    """Entra ID group (principals.groups) whose members read the view from Power BI / any SQL client."""

    @field_validator("version")
    @classmethod
    def _merge(cls, v: str) -> str:
        if v == "14":
            raise ValueError("'14' has no MERGE (the export's idempotent write needs PostgreSQL 15 or later)")
        return v

    @field_validator("sku_name")
    @classmethod
    def _sku(cls, v: str) -> str:
        if not re.fullmatch(SKU_PATTERN, v):
            raise ValueError(f"{v!r} is not a flexible server SKU azurerm accepts (e.g. B_Standard_B1ms, "
                             "GP_Standard_D2ds_v5, MO_Standard_E4ds_v5)")
        return v

    @field_validator("storage_mb")
    @classmethod
    def _storage(cls, v: int) -> int:
        if v not in STORAGE_MB:
            raise ValueError(f"{v} is not a size Azure offers: {', '.join(map(str, STORAGE_MB))}")
        return v


def check_cloud(pg: Postgres, groups: dict[str, str], export_enabled: bool) -> None:
    """Cross-section checks of a cloud environment: the groups exist, export has a server."""
    if export_enabled and not pg.enabled:
        raise FieldProblem("workloads.export.enabled", "workloads.export.enabled needs postgres.enabled: true "
                           "(the export writes to this environment's flexible server)")
    if not pg.enabled:
        return
    if not pg.admin_group:
        raise FieldProblem("postgres.admin_group", "postgres.admin_group is required: Entra ID auth only, so "
                           "an Entra group must administer the server (a key of principals.groups)")
    for field in ("admin_group", "bi_readers_group"):
        group = getattr(pg, field)
        if group and group not in groups:
            raise FieldProblem(f"postgres.{field}", f"postgres.{field} {group!r} is not in principals.groups")
    if pg.high_availability != "off" and pg.sku_name.startswith("B_"):
        raise FieldProblem("postgres.high_availability", "high availability needs a General Purpose or Memory "
                           "Optimized SKU (Azure refuses it on Burstable B_ SKUs)")
