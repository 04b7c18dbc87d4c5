"""Cluster policy the job clusters run under: runtime, pool, size and auto-termination are not negotiable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktn_provider_databricks.cluster_policy import ClusterPolicy
from constructs import Construct


@dataclass(frozen=True)
class JobClusterPolicyProps:
    name: str
    spark_version: str
    instance_pool_id: str
    allowed_node_types: tuple[str, ...]
    max_workers: int = 8
    autotermination_minutes: int = 20


def policy_definition(props: JobClusterPolicyProps) -> dict[str, Any]:
    """The policy as Databricks' policy-definition language (one rule per cluster attribute)."""
    return {
        "spark_version": {"type": "fixed", "value": props.spark_version},
        # Unity Catalog dedicated mode only: no legacy no-isolation cluster that would bypass the
        # catalog's grants on the data lake.
        "data_security_mode": {"type": "fixed", "value": "SINGLE_USER"},
        "instance_pool_id": {"type": "fixed", "value": props.instance_pool_id, "hidden": True},
        "driver_instance_pool_id": {"type": "fixed", "value": props.instance_pool_id, "hidden": True},
        # Pool clusters take their node type from the pool, so the cluster spec leaves it out (optional);
        # anyone setting one explicitly is held to the allowlist.
        "node_type_id": {"type": "allowlist", "values": list(props.allowed_node_types), "isOptional": True},
        "driver_node_type_id": {"type": "allowlist", "values": list(props.allowed_node_types), "isOptional": True},
        "autotermination_minutes": {"type": "fixed", "value": props.autotermination_minutes, "hidden": True},
        "autoscale.max_workers": {"type": "range", "maxValue": props.max_workers},
        "num_workers": {"type": "range", "maxValue": props.max_workers, "isOptional": True},
    }


class JobClusterPolicy(Construct):
    def __init__(self, scope: Construct, id_: str, props: JobClusterPolicyProps):
        super().__init__(scope, id_)
        if not props.allowed_node_types:
            raise ValueError(f"cluster policy {props.name}: allowed_node_types is empty")
        self.props = props
        self.definition = policy_definition(props)
        # The pool id is a Terraform reference; json.dumps keeps it as an interpolation inside the string.
        self.policy = ClusterPolicy(self, "policy", name=props.name, definition=json.dumps(self.definition))

    @property
    def id(self) -> str:
        return self.policy.id
