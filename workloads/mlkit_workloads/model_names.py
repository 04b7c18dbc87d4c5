"""Registered model names: Unity Catalog's three levels, ``catalog.schema.model``.

On Databricks MLflow's registry URI defaults to ``databricks-uc`` when the tracking URI is
``databricks`` (mlflow/tracking/_model_registry/utils.py), and Unity Catalog only accepts
three-level names. The same full names are used against the local sqlite registry (OSS MLflow
refuses only ``/`` and ``:`` in a name), so a name never changes between local and the cloud.

:func:`full_model_name` is the one place a full name is built: the stacks (registered models and
grants), the jobs (register, alias), the scoring service, promotion and drift all call it.
"""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from .strict import Strict

# Unity Catalog stores names in lower case; letters, digits and underscores need no quoting in SQL
# (`GRANT ... ON MODEL a.b.c`) and are legal in every registry and Terraform address.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,254}")


def check_identifier(value: str, what: str) -> str:
    """``value`` as a Unity Catalog name part, or ValueError saying which part and why."""
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"{value!r} is not a Unity Catalog {what} name: use lower-case letters, digits and "
                         "underscores, starting with a letter or underscore (at most 255), e.g. 'mlk_dev'")
    return value


class ModelRegistry(Strict):
    """Where an environment's models are registered: a Unity Catalog catalog and schema."""

    # "schema" is the key in the environment file; the attribute is schema_ (BaseModel has .schema).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    catalog: str = Field(default="mlk_local", description="Unity Catalog catalog of the registered models")
    schema_: str = Field(default="ml", alias="schema", description="schema inside the catalog")

    @field_validator("catalog")
    @classmethod
    def _catalog(cls, v: str) -> str:
        return check_identifier(v, "catalog")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: str) -> str:
        return check_identifier(v, "schema")


def full_model_name(registry: ModelRegistry, model: str) -> str:
    """``catalog.schema.model``: the name every registry, grant and lock uses for ``model``."""
    return f"{registry.catalog}.{registry.schema_}.{check_identifier(model, 'model')}"
