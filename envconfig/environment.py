"""The whole environment file as one typed model: identity (name, kind, location, subscription,
tags) plus one field per section; each section's model and cloud-only checks live in its module."""

from __future__ import annotations

import re
from typing import Literal

from mlkit_workloads.settings import WorkloadSettings
from mlkit_workloads.strict import Strict
from pydantic import Field, field_validator, model_validator

from . import databricks as databricks_checks
from . import infra as infra_checks
from . import orchestration, serving
from .databricks import Databricks
from .errors import FieldProblem, UserError
from .fields import check_uuid
from .infra import Aks, Backend, ContainerRegistry, EventHubs, KeyVault, Network, Principals, Storage
from .jobs import Jobs
from .local import Local
from .naming import MANDATORY_TAGS, Names, names_for
from .postgres import Postgres
from .postgres import check_cloud as postgres_checks
from .orchestration import DataFactory, MlWorkspace
from .suppressions import Suppression


class EnvironmentConfig(Strict):
    name: str
    kind: Literal["cloud", "local"] = "cloud"
    description: str = ""
    location: str = "westeurope"
    location_short: str | None = None
    name_prefix: str = "mlk"
    name_suffix: str = ""
    subscription_id: str | None = None
    tenant_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    backend: Backend | None = None
    principals: Principals | None = None
    storage: Storage = Storage()
    key_vault: KeyVault = KeyVault()
    container_registry: ContainerRegistry = ContainerRegistry()
    aks: Aks = Aks()
    event_hubs: EventHubs = EventHubs()
    network: Network = Network()
    databricks: Databricks = Databricks()
    postgres: Postgres = Postgres()
    """The BI database the export task writes batch predictions to (optional)."""
    jobs: Jobs = Jobs()
    workloads: WorkloadSettings = WorkloadSettings()
    local: Local = Local()
    prod_like: bool = Field(default=False, description="stricter policy rules apply (staging, prod)")
    suppressions: list[Suppression] = Field(default_factory=list)
    # issue 13: the optional systems (envconfig/orchestration.py)
    data_factory: DataFactory = DataFactory()
    ml_workspace: MlWorkspace = MlWorkspace()

    @field_validator("subscription_id", "tenant_id")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        return check_uuid(v, "a UUID")

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        missing = [t for t in MANDATORY_TAGS if not v.get(t)]
        if missing:
            raise ValueError(f"mandatory tag(s) missing: {', '.join(missing)}")
        for k, val in v.items():
            if re.search(r"[<>%&\\?/]", k) or len(k) > 512 or len(str(val)) > 256:
                raise ValueError(f"tag {k!r}: Azure tag names can't contain <>%&\\?/ (max 512 chars, values 256)")
        return v

    @model_validator(mode="after")
    def _cloud_needs(self) -> "EnvironmentConfig":
        if self.tags.get("environment") not in (None, self.name):
            raise FieldProblem("tags.environment", f"tags.environment is {self.tags['environment']!r} but the environment is {self.name!r}")
        if self.kind == "cloud":
            missing = [f for f in ("subscription_id", "tenant_id", "backend", "principals") if getattr(self, f) is None]
            if missing:
                raise FieldProblem(missing[0], f"a cloud environment needs {', '.join(missing)}")
            infra_checks.check_cloud(self.principals, self.key_vault, self.aks, self.storage,
                                     self.container_registry, self.network)
            databricks_checks.check_cloud(self.databricks, self.network)
            postgres_checks(self.postgres, self.principals.groups, self.workloads.export.enabled)
        orchestration.check(self)
        return self

    @property
    def registered_models(self) -> dict[str, str]:
        """Job -> full Unity Catalog name (``catalog.schema.model``) of the model it registers."""
        return serving.registered_models(self.workloads)

    @property
    def served_models(self) -> dict[str, str]:
        """Job -> full name of each model the scoring service serves (``workloads.serving.models``)."""
        return serving.served(self.workloads)

    @property
    def names(self) -> Names:
        return names_for(self.name_prefix, self.name, self.location, self.name_suffix, self.location_short)

    @property
    def is_cloud(self) -> bool:
        return self.kind == "cloud"

    # The refusals of a command given the wrong kind of environment, defined once. Exit code 2 (bad
    # input, like an unknown environment), except where a command's codes mean otherwise (drift: 1).
    def require_cloud(self, doing: str) -> None:
        """Refuse a local environment: it has no cloud stacks ``doing`` ("to draw", "to deploy", ...)."""
        if not self.is_cloud:
            raise UserError(f"environment {self.name!r} is kind 'local': it has no cloud stacks {doing} "
                            "(`mlkit run --env local` runs its jobs on this machine)", exit_code=2)

    def require_local(self, command: str, instead: str) -> None:
        """Refuse a cloud environment for a command that works on this machine; ``instead``: where it runs."""
        if self.is_cloud:
            raise UserError(f"{self.name} is a cloud environment; `mlkit {command}` works on a local environment "
                            f"({instead})", exit_code=2)
