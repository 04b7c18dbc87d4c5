"""`<env>-workspace`: what lives inside the Databricks workspace (databricks provider)."""

from __future__ import annotations

from cdktn import TerraformOutput, TerraformStack
from cdktn_provider_databricks.provider import DatabricksProvider
from constructs import Construct
from mlkit_workloads import __version__ as workloads_version
from mlkit_workloads import graph

from envconfig.environment import EnvironmentConfig
from envconfig.naming import Names, tags_for

from .backend import attach_backend
from .data_access import JOB_CONTAINER_ACCESS
from .errors import StackInputError
from .platform_stack import PlatformStack
from .settings_resolution import resolve_workload_settings
from .workspace.data_access import DataAccessProps, UnityCatalogDataAccess
from .workspace.experiments import TrackingExperiment, TrackingExperimentProps
from .workspace.export_credential import ExportCredential, ExportCredentialProps
from .workspace.files import SettingsFile, SettingsFileProps, WheelFile, WheelFileProps
from .workspace.jobs import GraphJob, GraphJobProps, JobClusterSpec, ScheduleSpec
from .workspace.model_access import ModelAccessProps, UnityCatalogModels
from .workspace.policy import JobClusterPolicy, JobClusterPolicyProps
from .workspace.pools import WorkerPool, WorkerPoolProps
from .workspace.secret_scope import KeyVaultSecretScope, KeyVaultSecretScopeProps
# issue 13: Data Factory orchestrates the jobs it lists
from cdktn_provider_azurerm.provider import AzurermProvider, AzurermProviderFeatures
from envconfig.adf_schedule import recurrence
from .platform.data_factory_pipeline import PipelineSpec
from .workspace.orchestration import DatabricksLinkProps, FactoryOrchestration, OrchestratedJob, OrchestrationProps

OUTPUT_JOB_IDS = "job_ids"


class WorkspaceStack(TerraformStack):
    def __init__(self, scope: Construct, cfg: EnvironmentConfig, platform: PlatformStack, wheel_source: str):
        """``wheel_source``: path of the built workloads wheel relative to this stack's directory."""
        names: Names = cfg.names
        super().__init__(scope, names.workspace_stack)
        self.cfg = cfg
        dbx = cfg.databricks
        tags = tags_for(cfg.tags, cfg.name)
        attach_backend(self, cfg, "workspace")
        # Both values are references into the platform stack: Terraform reads them from its state.
        # Authentication is Azure's (the deploying principal via OIDC/env), never a personal token.
        DatabricksProvider(
            self, "databricks",
            host=platform.workspace.url,
            azure_workspace_resource_id=platform.workspace.id,
            azure_tenant_id=cfg.tenant_id,
        )

        self.pools = {
            key: WorkerPool(self, f"pool-{key}", WorkerPoolProps(
                name=names.instance_pool(key), node_type=pool.node_type, spark_version=dbx.spark_version,
                tags=tags, min_idle=pool.min_idle, max_capacity=pool.max_capacity, idle_minutes=pool.idle_minutes))
            for key, pool in dbx.instance_pools.items()
        }
        job_pool = self.pools[dbx.job_cluster.pool]
        self.policy = JobClusterPolicy(self, "cluster-policy", JobClusterPolicyProps(
            name=names.cluster_policy, spark_version=dbx.spark_version, instance_pool_id=job_pool.id,
            allowed_node_types=tuple(dbx.cluster_policy.allowed_node_types),
            max_workers=dbx.cluster_policy.max_workers,
            autotermination_minutes=dbx.cluster_policy.autotermination_minutes))

        self.secret_scope = KeyVaultSecretScope(self, "secret-scope", KeyVaultSecretScopeProps(
            name=names.secret_scope, key_vault_id=platform.key_vault.id, key_vault_uri=platform.key_vault.uri))

        self.settings_file = SettingsFile(self, "settings", SettingsFileProps(
            path=names.settings_file, settings=resolve_workload_settings(cfg.workloads, names)))
        self.wheel = WheelFile(self, "wheel", WheelFileProps(
            path=names.wheel_path(workloads_version), source=wheel_source))

        # The jobs run as the deploying service principal; Unity Catalog grants name it by application id.
        run_as = cfg.principals.deployer_application_id
        if not run_as:
            raise StackInputError("principals.deployer_application_id",
                                  f"{cfg.name}: the jobs run as the deploying service principal and the data lake "
                                  "grants name it by its application (client) id; set it (e.g. "
                                  "${MLKIT_DEPLOYER_APPLICATION_ID})")
        self.data_access = UnityCatalogDataAccess(self, "data-access", DataAccessProps(
            access_connector_id=platform.access_connector.id, credential_name=names.storage_credential,
            # Container roots, in the provider's documented form (no trailing slash).
            locations={c: (names.external_location(c), names.abfss_url(c).rstrip("/"), access)
                       for c, access in JOB_CONTAINER_ACCESS.items()},
            principal_application_id=run_as, workspace_id=platform.workspace.workspace.workspace_id,
            metastore_id=dbx.metastore_id))

        # The export task's token for the BI database (only where the environment has one).
        self.export_credential = ExportCredential(self, "export-credential", ExportCredentialProps(
            name=names.export_service_credential, access_connector_id=platform.export_connector.id,
            principal_application_id=run_as, comment=f"Managed by mlkit ({cfg.name}): export to the BI database",
        )) if platform.predictions_db is not None else None

        # The models live in Unity Catalog (MLflow's databricks-uc registry); the jobs register versions
        # as their owner, the scoring service loads its champion as its own identity.
        registry, ws = cfg.workloads.tracking.registry, cfg.workloads
        shorts = {getattr(ws, job).registered_model: full for job, full in cfg.registered_models.items()}
        self.model_access = UnityCatalogModels(self, "models", ModelAccessProps(
            catalog=registry.catalog, schema=registry.schema_, models=shorts,
            served=tuple(getattr(ws, job).registered_model for job in cfg.served_models),
            owner_application_id=run_as, scoring_application_id=platform.scoring_identity.client_id,
            scoring_display_name=names.scoring_principal, create_catalog=dbx.create_catalog,
            catalog_storage_root=names.abfss_url("models", "unity-catalog").rstrip("/"),
            catalog_after=(self.data_access.locations["models"],),
            tags=tags, comment=f"Managed by mlkit ({cfg.name})"))

        cluster = JobClusterSpec(
            key=names.job_cluster_key, instance_pool_id=job_pool.id, policy_id=self.policy.id,
            spark_version=dbx.spark_version, min_workers=dbx.job_cluster.min_workers,
            max_workers=dbx.job_cluster.max_workers)
        self.experiments: dict[str, TrackingExperiment] = {}
        self.jobs: dict[str, GraphJob] = {}
        for job in graph.JOBS.values():
            self.experiments[job.name] = TrackingExperiment(self, f"experiment-{job.name}", TrackingExperimentProps(
                name=names.experiment(job.name), description=job.description, tags=tags))
            # One scheduler: a job Data Factory orchestrates runs on the factory's trigger, not its own.
            schedule = None if job.name in self._orchestrated() else cfg.jobs.schedules.get(job.schedule_key)
            self.jobs[job.name] = GraphJob(self, f"job-{job.name}", GraphJobProps(
                job=job, name=names.job(job.name), env=cfg.name, settings_path=names.settings_file,
                wheel_path=names.wheel_path(workloads_version), cluster=cluster, run_as_application_id=run_as,
                schedule=ScheduleSpec(schedule.quartz_cron, schedule.timezone, schedule.paused) if schedule else None,
                notification_emails=tuple(dbx.notification_emails), timeout_seconds=cfg.jobs.timeout_seconds,
                max_concurrent_runs=cfg.jobs.max_concurrent_runs, max_retries=cfg.jobs.max_retries, tags=tags,
                # A run can only start once the wheel and the settings it reads are uploaded, can reach
                # the data lake once the grants exist, can register once its models exist, and can
                # export once its principal may use the database's service credential.
                after=(self.wheel.file, self.settings_file.file, *self.data_access.grants.values(),
                       *self.model_access.dependables, *self._export_grant(job))))

        self._orchestration(platform, job_pool.id)

        TerraformOutput(self, OUTPUT_JOB_IDS, value={k: j.id for k, j in self.jobs.items()},
                        description="Databricks job id per job of the workloads graph", static_id=True)

    def _export_grant(self, job: graph.Job) -> tuple:
        exports = any(t.entry_point == "mlkit-export" for t in job.tasks)
        return (self.export_credential.grants,) if exports and self.export_credential is not None else ()

    # ---- issue 13: Data Factory's pipelines, triggers and Databricks identity --------------------
    def _orchestrated(self) -> tuple[str, ...]:
        adf = self.cfg.data_factory
        return tuple(adf.jobs) if adf.enabled else ()

    def _orchestration(self, platform: PlatformStack, instance_pool_id: str) -> None:
        factory = platform.data_factory
        if factory is None or not self._orchestrated():
            self.orchestration = None
            return
        cfg, adf = self.cfg, self.cfg.data_factory
        # The factory's pipeline resources only: same OIDC login as the platform stack, no secrets.
        AzurermProvider(self, "azurerm", subscription_id=cfg.subscription_id, tenant_id=cfg.tenant_id,
                        use_oidc=True, use_cli=False, features=[AzurermProviderFeatures()])
        dbx = cfg.databricks
        jobs = []
        for name in adf.jobs:
            job = graph.JOBS[name]
            schedule = cfg.jobs.schedules[job.schedule_key]
            jobs.append(OrchestratedJob(spec=PipelineSpec(
                job=job, copies=tuple(factory.copies),
                ingest_folder=(getattr(cfg.workloads, name).source.path or "").strip("/"),
                raw_root=cfg.names.abfss_url("raw").rstrip("/"), databricks_job_id=self.jobs[name].id,
                databricks_linked_service=cfg.names.adf_linked_service_databricks,
                copy_retries=adf.copy_retries, job_retries=adf.job_retries,
                retry_interval_seconds=adf.retry_interval_seconds, copy_timeout_minutes=adf.copy_timeout_minutes,
                job_timeout_seconds=cfg.jobs.timeout_seconds),
                recurrence=recurrence(schedule.quartz_cron, schedule.timezone), paused=schedule.paused))
        names = cfg.names
        self.orchestration = FactoryOrchestration(self, "orchestration", OrchestrationProps(
            names=names, data_factory_id=factory.id,
            identity_client_id=factory.databricks_identity.client_id,
            identity_name=names.data_factory_databricks_identity,
            link=DatabricksLinkProps(
                workspace_url=platform.workspace.url, workspace_resource_id=platform.workspace.id,
                credential_name=names.adf_credential, instance_pool_id=instance_pool_id,
                spark_version=dbx.spark_version, min_workers=dbx.job_cluster.min_workers,
                max_workers=dbx.job_cluster.max_workers,
                integration_runtime_name=names.adf_integration_runtime if factory.integration_runtime else None),
            jobs=tuple(jobs)))
