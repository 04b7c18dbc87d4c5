"""Databricks workspace settings: SKU and network, instance pools, cluster policy, job cluster, Unity
Catalog metastore/catalog; and the cloud-only checks between them (pools, policy, private access)."""

from __future__ import annotations

import re
from typing import Literal

from mlkit_workloads.strict import Strict
from mlkit_workloads.target_runtime import DATABRICKS_RUNTIME
from pydantic import Field, field_validator, model_validator

from .errors import FieldProblem
from .fields import check_not_above, check_uuid
from .infra import Network


class InstancePool(Strict):
    node_type: str = "Standard_D4ds_v5"
    min_idle: int = Field(default=0, ge=0)
    max_capacity: int = Field(default=8, ge=1)
    idle_minutes: int = Field(default=10, ge=0, le=10000)

    @model_validator(mode="after")
    def _range(self) -> "InstancePool":
        check_not_above(self, "min_idle", "max_capacity")
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
        check_not_above(self, "min_workers", "max_workers")
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
        return check_uuid(v, "a metastore id (UUID)")

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


def check_cloud(dbx: Databricks, network: Network) -> None:
    """Checks of a cloud environment's Databricks section (and its network); raises the first FieldProblem."""
    if dbx.job_cluster.pool not in dbx.instance_pools:
        raise FieldProblem("databricks.job_cluster.pool", f"databricks.job_cluster.pool {dbx.job_cluster.pool!r} "
                           f"is not one of instance_pools ({', '.join(dbx.instance_pools)})")
    for pname, pool in dbx.instance_pools.items():
        if pool.node_type not in dbx.cluster_policy.allowed_node_types:
            raise FieldProblem(f"databricks.instance_pools.{pname}.node_type", f"instance pool {pname!r} uses {pool.node_type!r}, "
                               f"which cluster_policy.allowed_node_types does not allow")
    if not dbx.public_network_access and not network.private:
        raise FieldProblem("databricks.public_network_access", "databricks.public_network_access: false needs network.private: true "
                           "(Azure requires VNet injection and a private endpoint for it)")
    if dbx.job_cluster.max_workers > dbx.cluster_policy.max_workers:
        raise FieldProblem("databricks.job_cluster.max_workers", "databricks.job_cluster.max_workers is above cluster_policy.max_workers")
