"""Azure infrastructure settings: state backend, principals, storage, Key Vault, registry, AKS,
Event Hubs, private network; and the cloud-only checks that span these sections."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from mlkit_workloads.strict import Strict
from pydantic import Field, field_validator, model_validator

from .errors import FieldProblem
from .fields import check_not_above, check_uuid
from .vault_permissions import CERT_PERMS, KEY_PERMS, SECRET_PERMS


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
        return check_uuid(v, "an object id (UUID)")

    @field_validator("deployer_application_id")
    @classmethod
    def _application_id(cls, v: str | None) -> str | None:
        return check_uuid(v, "an application (client) id (UUID)")

    @field_validator("groups")
    @classmethod
    def _group_uuids(cls, v: dict[str, str]) -> dict[str, str]:
        for name, oid in v.items():
            try:
                check_uuid(oid, "an object id (UUID)")
            except ValueError as e:
                raise ValueError(f"group {name!r}: {e}") from None
        return v


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
        check_not_above(self, "min_count", "max_count")
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


def check_cloud(principals: Principals | None, key_vault: KeyVault, aks: Aks, storage: Storage,
                registry: ContainerRegistry, network: Network) -> None:
    """Cross-section checks of a cloud environment's infrastructure; raises the first FieldProblem."""
    groups = principals.groups if principals else {}
    for g in key_vault.grants:
        if g.principal.startswith("group:") and g.principal[6:] not in groups:
            raise FieldProblem("key_vault.grants", f"key_vault grant names {g.principal!r} but principals.groups has no such group")
        if g.principal == "databricks" and not (principals and principals.databricks):
            raise FieldProblem("key_vault.grants", "key_vault grant for 'databricks' needs principals.databricks")
    if aks.admin_group and aks.admin_group not in groups:
        raise FieldProblem("aks.admin_group", f"aks.admin_group {aks.admin_group!r} is not in principals.groups")
    if not storage.public_network_access and not network.private:
        # false means a deny-by-default firewall that only private endpoints and trusted Azure
        # services pass: the clusters and the scoring service need those endpoints.
        raise FieldProblem("storage.public_network_access", "storage.public_network_access: false needs network.private: true "
                           "(its firewall admits only private endpoints and trusted Azure services: the jobs' "
                           "clusters and the scoring service would have no way to reach the account)")
    if not registry.public_network_access and not network.private:
        raise FieldProblem("container_registry.public_network_access", "container_registry.public_network_access: false needs network.private: true "
                           "(AKS pulls the scoring image through the registry's private endpoint)")
