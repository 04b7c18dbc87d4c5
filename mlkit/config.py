"""Environment files -> one typed, validated config.

An environment file is YAML validated by :class:`EnvironmentConfig`. Files may inherit
with ``extends: <name>`` (deep merge: mappings merge key by key, lists and scalars are
replaced). Strings may reference ``${VAR}`` or ``${VAR:-default}``, resolved from the
process environment at load time. Every problem becomes a :class:`ConfigProblem` naming
the file, the dotted field and (where YAML tells us) the line; nothing raises a traceback
at the user.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from mlkit_workloads.model_names import check_identifier, full_model_name
from mlkit_workloads.settings import WorkloadSettings
from mlkit_workloads.strict import Strict
from mlkit_workloads.target_runtime import DATABRICKS_RUNTIME
from pydantic import Field, ValidationError, field_validator, model_validator

from stacks.naming import MANDATORY_TAGS, NamingError, Names, names_for

from .cron import CronError, validate_quartz_cron

DEFAULT_DIR = Path("environments")
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '<file>'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --------------------------------------------------------------------------- schema


class Backend(Strict):
    """Terraform state backend. ``azurerm`` for cloud environments; ``local`` only for tests."""

    type: Literal["azurerm", "local"] = "azurerm"
    resource_group_name: str | None = None
    storage_account_name: str | None = None
    container_name: str = "tfstate"
    key: str | None = None  # defaults to <env>/<stack>.tfstate
    path: str | None = None  # local backend: directory for state files

    @model_validator(mode="after")
    def _complete(self) -> "Backend":
        if self.type == "azurerm" and not (self.resource_group_name and self.storage_account_name):
            raise ValueError("azurerm backend needs 'resource_group_name' and 'storage_account_name'")
        return self


class Principals(Strict):
    """Object ids of the identities that get grants. Use ``${VAR}`` to keep them out of git."""

    deployer: str = Field(description="object id of the deploying service principal")
    deployer_application_id: str | None = Field(
        default=None, description="application (client) id of the deploying service principal: the Databricks "
                                  "jobs run as it and Unity Catalog grants name it by this id")
    databricks: str | None = Field(
        default=None, description="object id of the AzureDatabricks enterprise app in this tenant")
    groups: dict[str, str] = Field(default_factory=dict, description="Entra ID group name -> object id")

    @field_validator("deployer", "databricks")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(UUID, v):
            raise ValueError(f"{v!r} is not an object id (UUID)")
        return v

    @field_validator("deployer_application_id")
    @classmethod
    def _application_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(UUID, v):
            raise ValueError(f"{v!r} is not an application (client) id (UUID)")
        return v

    @field_validator("groups")
    @classmethod
    def _group_uuids(cls, v: dict[str, str]) -> dict[str, str]:
        for name, oid in v.items():
            if not re.fullmatch(UUID, oid):
                raise ValueError(f"group {name!r}: {oid!r} is not an object id (UUID)")
        return v


SECRET_PERMS = ("get", "list", "set", "delete", "recover", "backup", "restore", "purge")
KEY_PERMS = ("get", "list", "create", "update", "import", "delete", "recover", "backup", "restore",
             "decrypt", "encrypt", "unwrapkey", "wrapkey", "verify", "sign", "purge")
CERT_PERMS = ("get", "list", "create", "update", "import", "delete", "recover", "backup", "restore",
              "managecontacts", "manageissuers", "getissuers", "listissuers", "setissuers", "deleteissuers",
              "purge")


class KeyVaultGrant(Strict):
    """Who may do what in the vault. ``principal`` is deployer, databricks, aks_workload or group:<name>."""

    principal: str
    secrets: list[Literal[SECRET_PERMS]] = Field(default_factory=list)  # type: ignore[valid-type]
    keys: list[Literal[KEY_PERMS]] = Field(default_factory=list)  # type: ignore[valid-type]
    certificates: list[Literal[CERT_PERMS]] = Field(default_factory=list)  # type: ignore[valid-type]

    @field_validator("principal")
    @classmethod
    def _known(cls, v: str) -> str:
        if v in ("deployer", "databricks", "aks_workload") or re.fullmatch(r"group:[A-Za-z0-9._-]+", v):
            return v
        raise ValueError(f"unknown principal {v!r}: use deployer, databricks, aks_workload or group:<name>")

    @model_validator(mode="after")
    def _something(self) -> "KeyVaultGrant":
        if not (self.secrets or self.keys or self.certificates):
            raise ValueError(f"grant for {self.principal!r} grants nothing")
        return self


class Storage(Strict):
    replication: Literal["LRS", "ZRS", "GRS", "GZRS", "RAGRS", "RAGZRS"] = "ZRS"
    blob_soft_delete_days: int = Field(default=7, ge=1, le=365)
    container_soft_delete_days: int = Field(default=7, ge=1, le=365)
    public_network_access: bool = Field(
        default=True, description="false: firewall denies by default (no IP rules), private endpoints and "
                                  "trusted Azure services (Event Hubs Capture, the Databricks access connector) "
                                  "only; needs network.private")


class KeyVault(Strict):
    sku: Literal["standard", "premium"] = "standard"
    soft_delete_retention_days: int = Field(default=90, ge=7, le=90)
    purge_protection: bool = True
    network_default_action: Literal["Allow", "Deny"] = "Deny"
    allowed_ip_ranges: list[str] = Field(default_factory=list)
    grants: list[KeyVaultGrant] = Field(default_factory=list)


class ContainerRegistry(Strict):
    sku: Literal["Basic", "Standard", "Premium"] = "Premium"
    public_network_access: bool = False


class Aks(Strict):
    kubernetes_version: str | None = None
    vm_size: str = "Standard_D4ds_v5"
    min_count: int = Field(default=1, ge=1, le=1000)
    max_count: int = Field(default=3, ge=1, le=1000)
    os_disk_size_gb: int = Field(default=128, ge=30, le=2048)
    sku_tier: Literal["Free", "Standard", "Premium"] = "Standard"
    admin_group: str | None = Field(default=None, description="name of a principals.groups entry")
    authorized_ip_ranges: list[str] = Field(default_factory=list)
    private_cluster: bool = False

    @model_validator(mode="after")
    def _range(self) -> "Aks":
        if self.min_count > self.max_count:
            raise ValueError(f"min_count ({self.min_count}) is above max_count ({self.max_count})")
        return self


class EventHubs(Strict):
    sku: Literal["Basic", "Standard", "Premium"] = "Standard"
    capacity: int = Field(default=1, ge=1, le=40)
    partition_count: int = Field(default=2, ge=1, le=32)
    message_retention_days: int = Field(default=1, ge=1, le=7)

    @field_validator("sku")
    @classmethod
    def _capture_tier(cls, v: str) -> str:
        # The platform turns on Event Hubs Capture (the monitoring job reads the inference log from
        # it), and the Basic tier has no Capture: Azure would reject the hub at apply time.
        if v == "Basic":
            raise ValueError("Basic has no Event Hubs Capture, which the monitoring job reads the inference "
                             "log from: use Standard or Premium")
        return v


class Network(Strict):
    """Private networking: VNet injection for Databricks and private endpoints for the data services.

    Required when the Databricks workspace's public network access is off (Azure only accepts
    that with VNet injection and a front-end private endpoint).
    """

    private: bool = False
    address_space: str = "10.40.0.0/16"
    databricks_host_prefix: str = "10.40.0.0/22"
    databricks_container_prefix: str = "10.40.4.0/22"
    private_endpoints_prefix: str = "10.40.8.0/24"
    aks_nodes_prefix: str = "10.40.16.0/20"

    @model_validator(mode="after")
    def _cidrs(self) -> "Network":
        import ipaddress

        nets = {}
        for f in ("address_space", "databricks_host_prefix", "databricks_container_prefix", "private_endpoints_prefix",
                  "aks_nodes_prefix"):
            try:
                nets[f] = ipaddress.ip_network(getattr(self, f))
            except ValueError:
                raise ValueError(f"{f}: {getattr(self, f)!r} is not a CIDR block like 10.40.0.0/16") from None
        subnets = [f for f in nets if f != "address_space"]
        for f in subnets:
            if not nets[f].subnet_of(nets["address_space"]):
                raise ValueError(f"{f} {nets[f]} is outside address_space {nets['address_space']}")
        for i, a in enumerate(subnets):
            for b in subnets[i + 1:]:
                if nets[a].overlaps(nets[b]):
                    raise ValueError(f"{a} {nets[a]} overlaps {b} {nets[b]}")
        return self


class InstancePool(Strict):
    node_type: str = "Standard_D4ds_v5"
    min_idle: int = Field(default=0, ge=0)
    max_capacity: int = Field(default=8, ge=1)
    idle_minutes: int = Field(default=10, ge=0, le=10000)

    @model_validator(mode="after")
    def _range(self) -> "InstancePool":
        if self.min_idle > self.max_capacity:
            raise ValueError(f"min_idle ({self.min_idle}) is above max_capacity ({self.max_capacity})")
        return self


class ClusterPolicy(Strict):
    max_workers: int = Field(default=8, ge=1)
    autotermination_minutes: int = Field(default=20, ge=10, le=10000)
    allowed_node_types: list[str] = Field(default_factory=lambda: ["Standard_D4ds_v5"], min_length=1)


class JobCluster(Strict):
    min_workers: int = Field(default=1, ge=0)
    max_workers: int = Field(default=4, ge=1)
    pool: str = "default"

    @model_validator(mode="after")
    def _range(self) -> "JobCluster":
        if self.min_workers > self.max_workers:
            raise ValueError(f"min_workers ({self.min_workers}) is above max_workers ({self.max_workers})")
        return self


class Databricks(Strict):
    sku: Literal["standard", "premium", "trial"] = "premium"
    no_public_ip: bool = True
    public_network_access: bool = True
    spark_version: str = DATABRICKS_RUNTIME.spark_version
    instance_pools: dict[str, InstancePool] = Field(default_factory=lambda: {"default": InstancePool()})
    cluster_policy: ClusterPolicy = ClusterPolicy()
    job_cluster: JobCluster = JobCluster()
    notification_emails: list[str] = Field(default_factory=list)
    metastore_id: str | None = Field(
        default=None, description="Unity Catalog metastore (UUID) to assign the workspace to; unset: the "
                                  "workspace is already assigned (e.g. automatically, to its region's metastore)")
    create_catalog: bool = Field(
        default=False, description="true: the workspace stack creates the catalog of workloads.tracking.registry "
                                   "(bound to this workspace, managed storage in the models container) and owns its "
                                   "grants; false: the catalog exists and only USE_CATALOG is added to it")

    @field_validator("metastore_id")
    @classmethod
    def _metastore(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(UUID, v):
            raise ValueError(f"{v!r} is not a metastore id (UUID)")
        return v

    @field_validator("spark_version")
    @classmethod
    def _runtime(cls, v: str) -> str:
        if not re.fullmatch(r"\d+\.\d+\.x-(cpu-ml-)?scala2\.\d+", v):
            raise ValueError(f"{v!r} is not a Databricks runtime key like '15.4.x-scala2.12'")
        if v != DATABRICKS_RUNTIME.spark_version:
            # The wheel is tested on one runtime's Spark and libraries; another one is untested.
            raise ValueError(f"{v!r} is not the runtime the workloads are tested on "
                             f"({DATABRICKS_RUNTIME.spark_version!r}, with {DATABRICKS_RUNTIME.constraints}); "
                             "to move runtimes change workloads/mlkit_workloads/target_runtime.py")
        return v

    @field_validator("notification_emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for e in v:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", e):
                raise ValueError(f"{e!r} is not an email address")
        return v


class Schedule(Strict):
    quartz_cron: str
    timezone: str = "UTC"
    paused: bool = False

    @field_validator("quartz_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            validate_quartz_cron(v)
        except CronError as e:
            raise ValueError(str(e)) from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. 'Europe/Amsterdam', 'UTC')") from None
        return v


class Jobs(Strict):
    timeout_seconds: int = Field(default=4 * 3600, ge=60)
    max_concurrent_runs: int = Field(default=1, ge=1, le=1000)
    max_retries: int = Field(default=1, ge=0, le=10)
    schedules: dict[str, Schedule] = Field(default_factory=dict)

    @field_validator("schedules")
    @classmethod
    def _known_jobs(cls, v: dict[str, Schedule]) -> dict[str, Schedule]:
        from mlkit_workloads.graph import JOBS

        unknown = sorted(set(v) - set(JOBS))
        if unknown:
            raise ValueError(f"no job named {', '.join(unknown)}; jobs are {', '.join(sorted(JOBS))}")
        return v


class Suppression(Strict):
    """A waived policy finding (see policies/). The reason is required; an expired one is an error."""

    rule: str = Field(pattern=r"^(MLK-[A-Z]+-\d{3}|CKV2?_[A-Z0-9]+_\d+)$",
                      description="our rule id (MLK-ST-003) or a checkov id (CKV_AZURE_59); `mlkit check --rules`")
    target: str = Field(description="construct path, Terraform address or glob; '*' for all")
    reason: str = Field(description="why the finding is accepted (at least 10 characters)")
    expires: str | None = Field(default=None, description="YYYY-MM-DD; after this date the suppression is an error")

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if len(v.strip()) < 10:
            raise ValueError("a suppression needs a reason of at least 10 characters saying why it is accepted")
        return v.strip()

    @field_validator("expires", mode="before")
    @classmethod
    def _date(cls, v: object) -> str | None:
        import datetime as dt

        if isinstance(v, dt.date):  # YAML reads an unquoted 2026-12-31 as a date
            return v.isoformat()
        if v is not None:
            try:
                dt.date.fromisoformat(str(v))
            except ValueError:
                raise ValueError(f"{v!r} is not a date (YYYY-MM-DD)") from None
        return v  # type: ignore[return-value]


class Local(Strict):
    """Settings of the local runner (`mlkit run`)."""

    state_dir: str = ".mlkit/local"
    mlflow_port: int = Field(default=5055, ge=1024, le=65535)
    spark_cores: int = Field(default=2, ge=1, le=64)


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
    jobs: Jobs = Jobs()
    workloads: WorkloadSettings = WorkloadSettings()
    local: Local = Local()
    prod_like: bool = Field(default=False, description="stricter policy rules apply (staging, prod)")
    suppressions: list[Suppression] = Field(default_factory=list)

    @field_validator("subscription_id", "tenant_id")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(UUID, v):
            raise ValueError(f"{v!r} is not a UUID")
        return v

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
            groups = self.principals.groups if self.principals else {}
            for g in self.key_vault.grants:
                if g.principal.startswith("group:") and g.principal[6:] not in groups:
                    raise FieldProblem("key_vault.grants", f"key_vault grant names {g.principal!r} but principals.groups has no such group")
                if g.principal == "databricks" and not (self.principals and self.principals.databricks):
                    raise FieldProblem("key_vault.grants", "key_vault grant for 'databricks' needs principals.databricks")
            if self.aks.admin_group and self.aks.admin_group not in groups:
                raise FieldProblem("aks.admin_group", f"aks.admin_group {self.aks.admin_group!r} is not in principals.groups")
            if self.databricks.job_cluster.pool not in self.databricks.instance_pools:
                raise FieldProblem("databricks.job_cluster.pool", f"databricks.job_cluster.pool {self.databricks.job_cluster.pool!r} "
                                 f"is not one of instance_pools ({', '.join(self.databricks.instance_pools)})")
            for pname, pool in self.databricks.instance_pools.items():
                if pool.node_type not in self.databricks.cluster_policy.allowed_node_types:
                    raise FieldProblem(f"databricks.instance_pools.{pname}.node_type", f"instance pool {pname!r} uses {pool.node_type!r}, "
                                     f"which cluster_policy.allowed_node_types does not allow")
            if not self.storage.public_network_access and not self.network.private:
                # false means a deny-by-default firewall that only private endpoints and trusted Azure
                # services pass: the clusters and the scoring service need those endpoints.
                raise FieldProblem("storage.public_network_access", "storage.public_network_access: false needs network.private: true "
                                 "(its firewall admits only private endpoints and trusted Azure services: the jobs' "
                                 "clusters and the scoring service would have no way to reach the account)")
            if not self.container_registry.public_network_access and not self.network.private:
                raise FieldProblem("container_registry.public_network_access", "container_registry.public_network_access: false needs network.private: true "
                                 "(AKS pulls the scoring image through the registry's private endpoint)")
            if not self.databricks.public_network_access and not self.network.private:
                raise FieldProblem("databricks.public_network_access", "databricks.public_network_access: false needs network.private: true "
                                 "(Azure requires VNet injection and a private endpoint for it)")
            if self.databricks.job_cluster.max_workers > self.databricks.cluster_policy.max_workers:
                raise FieldProblem("databricks.job_cluster.max_workers", "databricks.job_cluster.max_workers is above cluster_policy.max_workers")
        return self

    @property
    def registered_models(self) -> dict[str, str]:
        """Job -> full Unity Catalog name (``catalog.schema.model``) of the model it registers."""
        registry = self.workloads.tracking.registry
        return {job: full_model_name(registry, getattr(self.workloads, job).registered_model)
                for job in ("forecast", "classifier")}

    @property
    def served_model(self) -> str:
        """Full name of the model the scoring service loads (the rule of mlkit_workloads.serve.runner.build)."""
        ws = self.workloads
        return full_model_name(ws.tracking.registry, ws.serving.registered_model or ws.forecast.registered_model)

    @property
    def names(self) -> Names:
        return names_for(self.name_prefix, self.name, self.location, self.name_suffix, self.location_short)

    @property
    def is_cloud(self) -> bool:
        return self.kind == "cloud"


def model_name_problems(cfg: EnvironmentConfig) -> list[tuple[str, str]]:
    """(field, message) for model names that are not valid Unity Catalog names, clash, or are unnamed."""
    ws, out = cfg.workloads, []
    fields = {"workloads.forecast.registered_model": ws.forecast.registered_model,
              "workloads.classifier.registered_model": ws.classifier.registered_model}
    if ws.serving.registered_model is not None:
        fields["workloads.serving.registered_model"] = ws.serving.registered_model
    for f, value in fields.items():
        try:
            check_identifier(value, "model")
        except ValueError as e:
            out.append((f, f"{e} (it becomes the last part of catalog.schema.model)"))
    if ws.forecast.registered_model == ws.classifier.registered_model:
        out.append(("workloads.classifier.registered_model",
                    f"{ws.classifier.registered_model!r} is the forecast job's model too: each job needs its own"))
    served = ws.serving.registered_model
    if served is not None and served not in (ws.forecast.registered_model, ws.classifier.registered_model):
        out.append(("workloads.serving.registered_model", f"{served!r} is registered by no job (forecast registers "
                    f"{ws.forecast.registered_model!r}, classifier {ws.classifier.registered_model!r})"))
    registry = ws.tracking.registry
    if cfg.is_cloud:
        for part in ("catalog", "schema_"):
            if part not in registry.model_fields_set:
                out.append((f"workloads.tracking.registry.{part.rstrip('_')}",
                            "a cloud environment names the Unity Catalog catalog and schema of its models "
                            "(e.g. catalog: mlk_dev, schema: ml)"))
    return out


# --------------------------------------------------------------------------- loading


class FieldProblem(ValueError):
    """A cross-field check's error that names the field it is about (pydantic reports the whole
    model's checks at the model, which would print as the file with no field and no line)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class _Origin:
    """Where each dotted field came from: (file, line). Filled while reading and merging."""

    def __init__(self) -> None:
        self.at: dict[str, tuple[str, int]] = {}

    def find(self, dotted: str) -> tuple[str, int] | None:
        # The closest ancestor that we know of: a missing field points at its parent mapping.
        while True:
            if dotted in self.at:
                return self.at[dotted]
            if "." not in dotted:
                return self.at.get("")
            dotted = dotted.rsplit(".", 1)[0]


def _construct(node: yaml.Node, file: str, path: str, origin: _Origin) -> Any:
    origin.at[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            key = str(k.value)
            if key in out:
                raise ConfigError([ConfigProblem(file, f"{path}.{key}".lstrip("."), "duplicate key", k.start_mark.line + 1)])
            out[key] = _construct(v, file, f"{path}.{key}".lstrip("."), origin)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, file, f"{path}.{i}".lstrip("."), origin) for i, v in enumerate(node.value)]
    # Scalars: let PyYAML's resolver type them (int, float, bool, null, str).
    return yaml.SafeLoader(yaml.dump(None)).construct_object(node, deep=True)


def _read_yaml(path: Path, origin: _Origin) -> dict[str, Any]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([ConfigProblem(file, "", f"cannot read: {e.strerror}")]) from None
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(file, "", f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                                                   f"{e.start}): save the file as UTF-8", line)]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {getattr(e, 'problem', e)}",
                                         line + 1 if line is not None else None)]) from None
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError([ConfigProblem(file, "", "the top level must be a mapping of fields", 1)])
    return _construct(node, file, "", origin)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _resolve_vars(value: Any, path: str, origin: _Origin, problems: list[ConfigProblem], env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_vars(v, f"{path}.{k}".lstrip("."), origin, problems, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_vars(v, f"{path}.{i}".lstrip("."), origin, problems, env) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            file, line = origin.find(path) or ("?", None)
            problems.append(ConfigProblem(file, path, f"${{{name}}} is not set in the environment "
                                                      f"(export {name}=... or use ${{{name}:-default}})", line))
            return m.group(0)

        return _VAR.sub(sub, value)
    return value


def environment_names(directory: Path = DEFAULT_DIR) -> list[str]:
    """Concrete environments in a directory: every *.yaml that is not abstract (base files are)."""
    if not directory.is_dir():
        raise ConfigError([ConfigProblem(str(directory), "", "environments directory does not exist")])
    names = []
    for p in sorted(directory.glob("*.yaml")):
        try:
            head = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):  # loading it reports the problem with its line
            head = {}
        if not (isinstance(head, dict) and head.get("abstract") is True):
            names.append(p.stem)
    return names


def _raw_chain(name: str, directory: Path, origin: _Origin, seen: list[str]) -> dict[str, Any]:
    path = directory / f"{name}.yaml"
    if name in seen:
        chain = " -> ".join([*seen, name])
        raise ConfigError([ConfigProblem(str(directory / f"{seen[-1]}.yaml"), "extends", f"extends cycle: {chain}")])
    if not path.is_file():
        if seen:
            raise ConfigError([ConfigProblem(str(directory / f"{seen[-1]}.yaml"), "extends",
                                             f"extends {name!r}, but {path} does not exist")])
        known = ", ".join(environment_names(directory)) if directory.is_dir() else "none"
        raise ConfigError([ConfigProblem(str(path), "", f"no environment {name!r} (known: {known})")])
    data = _read_yaml(path, origin)
    data.pop("abstract", None)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError([ConfigProblem(str(path), "extends", "must be the name of another environment file")])
    parent_origin = _Origin()
    base = _raw_chain(parent, directory, parent_origin, [*seen, name])
    # Fields set here win; fields only the parent sets keep the parent's file and line.
    for k, v in parent_origin.at.items():
        origin.at.setdefault(k, v)
    return _merge(base, data)


def load_environment(name: str, directory: Path | str = DEFAULT_DIR, env: dict[str, str] | None = None) -> EnvironmentConfig:
    """Read, merge, resolve and validate one environment. Raises ConfigError with every problem found."""
    directory = Path(directory)
    origin = _Origin()
    raw = _raw_chain(name, directory, origin, [])
    file = str(directory / f"{name}.yaml")
    problems: list[ConfigProblem] = []
    raw = _resolve_vars(raw, "", origin, problems, dict(os.environ) if env is None else env)
    if problems:
        raise ConfigError(problems)
    if "name" in raw and raw["name"] != name:
        line = origin.find("name")
        raise ConfigError([ConfigProblem(file, "name", f"is {raw['name']!r} but the file is {name}.yaml",
                                         line[1] if line else None)])
    raw["name"] = name
    try:
        cfg = EnvironmentConfig.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            dotted = ".".join(str(p) for p in err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, FieldProblem):  # a cross-field check: report it at its field
                dotted = ".".join(x for x in (dotted, cause.field) if x)
            src = origin.find(dotted)
            f, line = src if src else (file, None)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see environments/schema.json)"
            elif err["type"] == "missing":
                msg = "required field is missing"
            problems.append(ConfigProblem(f, dotted, msg, line))
        raise ConfigError(problems) from None
    for dotted, message in model_name_problems(cfg):
        src = origin.find(dotted)
        problems.append(ConfigProblem(src[0] if src else file, dotted, message, src[1] if src else None))
    if problems:
        raise ConfigError(problems)
    try:
        cfg.names.validate()
    except NamingError as e:
        src = origin.find(e.field)
        raise ConfigError([ConfigProblem(src[0] if src else file, e.field, str(e), src[1] if src else None)]) from None
    return cfg


def load_all(directory: Path | str = DEFAULT_DIR, env: dict[str, str] | None = None) -> dict[str, EnvironmentConfig]:
    """Every concrete environment; collects the problems of all files before raising."""
    directory = Path(directory)
    out: dict[str, EnvironmentConfig] = {}
    problems: list[ConfigProblem] = []
    for name in environment_names(directory):
        try:
            out[name] = load_environment(name, directory, env)
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return out


def json_schema() -> dict[str, Any]:
    schema = EnvironmentConfig.model_json_schema()
    schema["properties"]["extends"] = {"type": "string", "description": "name of the environment file to inherit"}
    schema["properties"]["abstract"] = {"type": "boolean", "description": "a base file: not an environment"}
    schema.setdefault("required", [])
    schema["required"] = [r for r in schema["required"] if r != "name"]
    return schema
