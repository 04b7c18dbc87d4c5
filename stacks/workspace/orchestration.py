"""Data Factory's side of the workspace: its Databricks identity, the pipelines and their triggers.

In this stack, not the platform one, because the pipeline names the Databricks job and the
linked service the instance pool, which exist only here. The factory calls Databricks as its
user-assigned identity, registered as a workspace service principal with CAN_MANAGE_RUN on the
jobs it runs and nothing else (no workspace admin, no cluster creation). The job's own schedule is
off (workspace_stack): the factory's trigger, made from that same schedule, is the only scheduler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktn_provider_azurerm.data_factory_linked_custom_service import (
    DataFactoryLinkedCustomService,
    DataFactoryLinkedCustomServiceIntegrationRuntime,
)
from cdktn_provider_azurerm.data_factory_pipeline import DataFactoryPipeline
from cdktn_provider_azurerm.data_factory_trigger_schedule import (
    DataFactoryTriggerSchedule,
    DataFactoryTriggerScheduleSchedule,
)
from cdktn_provider_databricks.permissions import Permissions, PermissionsAccessControl
from cdktn_provider_databricks.service_principal import ServicePrincipal
from constructs import Construct

from envconfig.adf_schedule import Recurrence

from envconfig.naming import Names
from ..platform.data_factory_pipeline import PipelineSpec, activities, parameters

RUN_PERMISSION = "CAN_MANAGE_RUN"


@dataclass(frozen=True)
class DatabricksLinkProps:
    """How the factory reaches the workspace: MSI auth with its user-assigned credential."""

    workspace_url: str  # https://adb-....azuredatabricks.net
    workspace_resource_id: str
    credential_name: str
    instance_pool_id: str  # Data Factory's schema wants a cluster source; job activities run on the job's own
    spark_version: str
    min_workers: int
    max_workers: int
    integration_runtime_name: str | None = None


def databricks_type_properties(p: DatabricksLinkProps) -> dict:
    """AzureDatabricks linked service typeProperties (REST shape): identity only, no access token."""
    return {
        "domain": p.workspace_url,
        "authentication": "MSI",
        "workspaceResourceId": p.workspace_resource_id,
        "credential": {"referenceName": p.credential_name, "type": "CredentialReference"},
        "instancePoolId": p.instance_pool_id,
        "newClusterVersion": p.spark_version,
        "newClusterNumOfWorker": f"{p.min_workers}:{p.max_workers}",
    }


@dataclass(frozen=True)
class OrchestratedJob:
    spec: PipelineSpec
    recurrence: Recurrence
    paused: bool = False


@dataclass(frozen=True)
class OrchestrationProps:
    names: Names
    data_factory_id: str
    identity_client_id: str  # the factory's user-assigned identity (client id)
    identity_name: str
    link: DatabricksLinkProps
    jobs: tuple[OrchestratedJob, ...]


class FactoryOrchestration(Construct):
    def __init__(self, scope: Construct, id_: str, props: OrchestrationProps):
        super().__init__(scope, id_)
        n = props.names
        self.principal = ServicePrincipal(
            self, "principal", application_id=props.identity_client_id, display_name=props.identity_name,
            allow_cluster_create=False, allow_instance_pool_create=False, databricks_sql_access=False)
        runtime = props.link.integration_runtime_name
        self.databricks = DataFactoryLinkedCustomService(
            self, "databricks", name=n.adf_linked_service_databricks, data_factory_id=props.data_factory_id,
            type="AzureDatabricks", type_properties_json=json.dumps(databricks_type_properties(props.link)),
            integration_runtime=DataFactoryLinkedCustomServiceIntegrationRuntime(name=runtime) if runtime else None,
            description="The Databricks workspace, as the factory's user-assigned identity (MSI, no token)")
        self.pipelines: dict[str, DataFactoryPipeline] = {}
        self.triggers: dict[str, DataFactoryTriggerSchedule] = {}
        for orchestrated in props.jobs:
            spec, r = orchestrated.spec, orchestrated.recurrence
            job = spec.job.name
            Permissions(self, f"run-{job}", job_id=spec.databricks_job_id, access_control=[
                PermissionsAccessControl(service_principal_name=self.principal.application_id,
                                         permission_level=RUN_PERMISSION)])
            self.pipelines[job] = DataFactoryPipeline(
                self, f"pipeline-{job}", name=n.adf_pipeline(job), data_factory_id=props.data_factory_id,
                description=f"Generated from the job graph: copy the source to raw, then the {job} job",
                activities_json=json.dumps(activities(spec)), parameters=parameters(),
                concurrency=1, depends_on=[self.databricks])
            self.triggers[job] = DataFactoryTriggerSchedule(
                self, f"trigger-{job}", name=n.adf_trigger(job), data_factory_id=props.data_factory_id,
                pipeline_name=self.pipelines[job].name, frequency=r.frequency, interval=r.interval,
                time_zone=r.time_zone, activated=not orchestrated.paused,
                schedule=DataFactoryTriggerScheduleSchedule(
                    hours=list(r.hours), minutes=list(r.minutes), days_of_week=list(r.days_of_week) or None,
                    days_of_month=list(r.days_of_month) or None),
                description=f"The {job} job's schedule from the environment file")
