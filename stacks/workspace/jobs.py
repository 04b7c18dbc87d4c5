"""One Databricks job per job of the workloads graph; the graph is the only place tasks are listed."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_databricks.job import (
    Job,
    JobEmailNotifications,
    JobJobCluster,
    JobJobClusterNewCluster,
    JobJobClusterNewClusterAutoscale,
    JobParameter,
    JobRunAs,
    JobSchedule,
    JobTask,
    JobTaskDependsOn,
    JobTaskLibrary,
    JobTaskPythonWheelTask,
)
from cdktn import ITerraformDependable
from constructs import Construct
from mlkit_workloads import graph

# The many-models training groups with applyInPandas: adaptive execution re-plans the shuffle
# and breaks the partitions-per-core sizing the workloads choose.
JOB_SPARK_CONF = {"spark.sql.adaptive.enabled": "false"}


@dataclass(frozen=True)
class JobClusterSpec:
    key: str
    instance_pool_id: str
    policy_id: str
    spark_version: str
    min_workers: int = 1
    max_workers: int = 4
    # Unity Catalog access mode. Dedicated (single user) to the run-as principal: the cluster acts
    # as that identity, so the external-location grants apply, and applyInPandas runs unrestricted.
    data_security_mode: str = "SINGLE_USER"


@dataclass(frozen=True)
class ScheduleSpec:
    quartz_cron: str
    timezone: str = "UTC"
    paused: bool = False


@dataclass(frozen=True)
class GraphJobProps:
    job: graph.Job
    name: str
    env: str
    settings_path: str  # workspace path (without the /Workspace mount prefix)
    wheel_path: str  # workspace path of the workloads wheel
    cluster: JobClusterSpec
    # Application id of the service principal the job runs as (and the cluster is dedicated to):
    # the identity the Unity Catalog grants name. Never a person.
    run_as_application_id: str
    schedule: ScheduleSpec | None = None
    notification_emails: tuple[str, ...] = ()
    timeout_seconds: int = 4 * 3600
    max_concurrent_runs: int = 1
    max_retries: int = 1
    tags: dict[str, str] = field(default_factory=dict)
    # Resources the job needs to exist first (Terraform depends_on).
    after: tuple[ITerraformDependable, ...] = ()


# Databricks fills this dynamic value reference in per run: the task's rows (the export's run_id
# column, the logs) name the job run that wrote them, as the local runner's do.
JOB_RUN_ID = "{{job.run_id}}"


def task_parameters(env: str, settings_path: str, task: graph.Task) -> list[str]:
    """Command-line arguments of a task's entry point: the ones the local runner passes, and the run id."""
    return ["--env", env, "--settings", "/Workspace" + settings_path, "--run-id", JOB_RUN_ID, *task.parameters]


class GraphJob(Construct):
    def __init__(self, scope: Construct, id_: str, props: GraphJobProps):
        super().__init__(scope, id_)
        self.props = props
        spec = props.cluster
        wheel = JobTaskLibrary(whl="/Workspace" + props.wheel_path)
        tasks = [
            JobTask(
                task_key=task.key,
                description=task.description or None,
                job_cluster_key=spec.key,
                depends_on=[JobTaskDependsOn(task_key=d) for d in task.depends_on] or None,
                python_wheel_task=JobTaskPythonWheelTask(
                    package_name=graph.PACKAGE_NAME,
                    entry_point=task.entry_point,
                    parameters=task_parameters(props.env, props.settings_path, task),
                ),
                library=[wheel],
                max_retries=props.max_retries,
            )
            # Dependency order: the job reads top to bottom the way it runs.
            for task in props.job.topological_order()
        ]
        self.job = Job(
            self, "job",
            name=props.name,
            description=props.job.description,
            job_cluster=[JobJobCluster(
                job_cluster_key=spec.key,
                new_cluster=JobJobClusterNewCluster(
                    spark_version=spec.spark_version,
                    instance_pool_id=spec.instance_pool_id,
                    driver_instance_pool_id=spec.instance_pool_id,
                    policy_id=spec.policy_id,
                    apply_policy_default_values=True,
                    data_security_mode=spec.data_security_mode,
                    single_user_name=props.run_as_application_id,
                    autoscale=JobJobClusterNewClusterAutoscale(min_workers=spec.min_workers,
                                                               max_workers=spec.max_workers),
                    spark_conf=JOB_SPARK_CONF,
                    custom_tags=props.tags,
                ),
            )],
            task=tasks,
            # The graph's job parameters (raw_path, ...), which its tasks reference as {{job.parameters.x}}:
            # an orchestrator sets them per run, a scheduled run takes the defaults.
            parameter=[JobParameter(name=p.name, default=p.default) for p in props.job.parameters] or None,
            run_as=JobRunAs(service_principal_name=props.run_as_application_id),
            schedule=JobSchedule(
                quartz_cron_expression=props.schedule.quartz_cron,
                timezone_id=props.schedule.timezone,
                pause_status="PAUSED" if props.schedule.paused else "UNPAUSED",
            ) if props.schedule else None,
            email_notifications=JobEmailNotifications(
                on_failure=list(props.notification_emails)) if props.notification_emails else None,
            timeout_seconds=props.timeout_seconds,
            max_concurrent_runs=props.max_concurrent_runs,
            tags=props.tags,
            depends_on=list(props.after) or None,
        )

    @property
    def id(self) -> str:
        return self.job.id
