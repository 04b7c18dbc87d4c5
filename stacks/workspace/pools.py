"""Databricks instance pools: warm VMs for job clusters, released when idle."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_databricks.instance_pool import InstancePool, InstancePoolAzureAttributes
from constructs import Construct


@dataclass(frozen=True)
class WorkerPoolProps:
    name: str
    node_type: str
    spark_version: str
    tags: dict[str, str] = field(default_factory=dict)
    # Cheap and safe by default: nothing kept warm, idle VMs released after 10 minutes.
    min_idle: int = 0
    max_capacity: int = 8
    idle_minutes: int = 10


class WorkerPool(Construct):
    def __init__(self, scope: Construct, id_: str, props: WorkerPoolProps):
        super().__init__(scope, id_)
        if props.min_idle > props.max_capacity:
            raise ValueError(f"pool {props.name}: min_idle {props.min_idle} is above max_capacity {props.max_capacity}")
        self.props = props
        self.pool = InstancePool(
            self, "pool",
            instance_pool_name=props.name,
            node_type_id=props.node_type,
            min_idle_instances=props.min_idle,
            max_capacity=props.max_capacity,
            idle_instance_autotermination_minutes=props.idle_minutes,
            # Pinned runtime preloaded: job clusters start without downloading it.
            preloaded_spark_versions=[props.spark_version],
            azure_attributes=InstancePoolAzureAttributes(availability="ON_DEMAND_AZURE"),
            custom_tags=props.tags,
        )

    @property
    def id(self) -> str:
        return self.pool.id
