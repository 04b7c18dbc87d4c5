"""`<env>-platform`: the Azure resources of one environment (azurerm provider)."""

from __future__ import annotations

from cdktn import TerraformOutput, TerraformStack
from cdktn_provider_azurerm.log_analytics_workspace import LogAnalyticsWorkspace
from cdktn_provider_azurerm.provider import (
    AzurermProvider,
    AzurermProviderFeatures,
    AzurermProviderFeaturesApplicationInsights,
    AzurermProviderFeaturesKeyVault,
    AzurermProviderFeaturesResourceGroup,
)
from constructs import Construct
from mlkit_workloads.export.sql import table_spec

from envconfig.environment import EnvironmentConfig
from envconfig.naming import Names, tags_for

from .backend import attach_backend
from .data_access import JOB_CONTAINER_ACCESS
from .platform.access_connector import AccessConnectorProps, UnityCatalogConnector
from .platform.aks import ScoringCluster, ScoringClusterProps
from .platform.databricks_workspace import MlWorkspace, MlWorkspaceProps
from .platform.event_hubs import CaptureProps, InferenceLogHub, InferenceLogHubProps
from .platform.identity import WorkloadIdentity, WorkloadIdentityProps
from .platform.key_vault import SecretsVault, SecretsVaultProps
from .platform.network import PrivateNetwork, PrivateNetworkProps
from .platform.registry import ImageRegistry, ImageRegistryProps
from .platform.resource_group import PlatformResourceGroup, ResourceGroupProps
from .platform.postgres import PRIVATE_ENDPOINT_SUBRESOURCE as POSTGRES_SUBRESOURCE
from .platform.postgres import PredictionsDatabase, PredictionsDatabaseProps
from .platform.storage import DataLakeProps, DataLakeStorage
# issue 13: Data Factory orchestration, Azure ML workspace + Application Insights
from .platform.data_factory import DataFactoryProps, OrchestrationFactory
from .platform.ml_workspace import AzureMlWorkspace, AzureMlWorkspaceProps
from .platform.monitoring import ApplicationTelemetry, TelemetryProps

# Output names other tools read (`terraform output -json` in the deploy step).
OUTPUT_WORKSPACE_URL = "databricks_workspace_url"
OUTPUT_WORKSPACE_ID = "databricks_workspace_id"
OUTPUT_KEY_VAULT_URI = "key_vault_uri"
OUTPUT_REGISTRY_LOGIN_SERVER = "container_registry_login_server"
OUTPUT_SCORING_CLIENT_ID = "aks_workload_client_id"
OUTPUT_AKS_NAME = "aks_cluster_name"
OUTPUT_EVENTHUB_NAMESPACE = "eventhub_namespace"
OUTPUT_ACCESS_CONNECTOR_ID = "databricks_access_connector_id"
# issue 13 (present when the environment turns the system on)
OUTPUT_DATA_FACTORY_ID = "data_factory_id"
OUTPUT_ML_WORKSPACE_ID = "ml_workspace_id"
OUTPUT_APPINSIGHTS_SECRET = "application_insights_secret_name"
OUTPUT_EXPORT_CONNECTOR_ID = "export_access_connector_id"

# The models container is all the scoring service reads.
SCORING_MODELS_CONTAINER = "models"


class PlatformStack(TerraformStack):
    def __init__(self, scope: Construct, cfg: EnvironmentConfig):
        names: Names = cfg.names
        super().__init__(scope, names.platform_stack)
        self.cfg = cfg
        tags = tags_for(cfg.tags, cfg.name)
        attach_backend(self, cfg, "platform")
        AzurermProvider(
            self, "azurerm",
            subscription_id=cfg.subscription_id,
            tenant_id=cfg.tenant_id,
            # CI federates its own token (OIDC): no client secret anywhere, no developer CLI login.
            use_oidc=True,
            use_cli=False,
            # Storage data plane with Entra ID: the account has shared keys off.
            storage_use_azuread=True,
            features=[AzurermProviderFeatures(
                key_vault=[AzurermProviderFeaturesKeyVault(
                    purge_soft_delete_on_destroy=False, recover_soft_deleted_key_vaults=True)],
                resource_group=[AzurermProviderFeaturesResourceGroup(prevent_deletion_if_contains_resources=True)],
                # Azure adds a "Failure Anomalies" alert rule to every new Application Insights: nobody
                # manages it, and drift would report it as an unmanaged object every night.
                application_insights=[AzurermProviderFeaturesApplicationInsights(disable_generated_rule=True)],
            )],
        )

        self.resource_group = PlatformResourceGroup(self, "resource-group", ResourceGroupProps(
            name=names.resource_group, location=cfg.location, tags=tags))
        rg, loc = self.resource_group.name, cfg.location

        # The jobs' way into the data lake (Unity Catalog storage credential): a managed identity.
        self.access_connector = UnityCatalogConnector(self, "access-connector", AccessConnectorProps(
            name=names.databricks_access_connector, resource_group_name=rg, location=loc, tags=tags))
        self.storage = DataLakeStorage(self, "storage", DataLakeProps(
            name=names.storage_account, resource_group_name=rg, location=loc, containers=names.CONTAINERS,
            tags=tags, replication=cfg.storage.replication,
            blob_soft_delete_days=cfg.storage.blob_soft_delete_days,
            container_soft_delete_days=cfg.storage.container_soft_delete_days,
            public_network_access=cfg.storage.public_network_access,
            # Behind the firewall, admit the connector by resource id too (what Databricks documents
            # for Unity Catalog), not only through the trusted-services bypass.
            trusted_resource_ids=(self.access_connector.id,)))
        # Per container exactly what the jobs do there (stacks.data_access), never the account.
        self.storage.grant_containers("databricks-jobs", self.access_connector.principal_id, JOB_CONTAINER_ACCESS)

        self.key_vault = SecretsVault(self, "key-vault", SecretsVaultProps(
            name=names.key_vault, resource_group_name=rg, location=loc, tenant_id=cfg.tenant_id, tags=tags,
            sku=cfg.key_vault.sku, soft_delete_retention_days=cfg.key_vault.soft_delete_retention_days,
            purge_protection=cfg.key_vault.purge_protection,
            network_default_action=cfg.key_vault.network_default_action,
            allowed_ip_ranges=tuple(cfg.key_vault.allowed_ip_ranges)))

        self.registry = ImageRegistry(self, "registry", ImageRegistryProps(
            name=names.container_registry, resource_group_name=rg, location=loc, tags=tags,
            sku=cfg.container_registry.sku, public_network_access=cfg.container_registry.public_network_access))

        # Container Insights: AKS logs and metrics in Azure Monitor (checkov CKV_AZURE_4).
        self.log_analytics = LogAnalyticsWorkspace(
            self, "log-analytics", name=names.log_analytics_workspace, resource_group_name=rg, location=loc,
            sku="PerGB2018", retention_in_days=30, tags=tags)

        net = cfg.network
        self.network = PrivateNetwork(self, "network", PrivateNetworkProps(
            names=names, resource_group_name=rg, location=loc, tags=tags, address_space=net.address_space,
            databricks_host_prefix=net.databricks_host_prefix,
            databricks_container_prefix=net.databricks_container_prefix,
            private_endpoints_prefix=net.private_endpoints_prefix,
            aks_nodes_prefix=net.aks_nodes_prefix)) if net.private else None

        groups = cfg.principals.groups
        self.aks = ScoringCluster(self, "aks", ScoringClusterProps(
            name=names.kubernetes_cluster, dns_prefix=names.kubernetes_dns_prefix, resource_group_name=rg,
            location=loc, tenant_id=cfg.tenant_id, node_pool_name=names.aks_system_node_pool,
            node_pool_rotation_name=names.aks_system_node_pool_rotation, tags=tags,
            kubernetes_version=cfg.aks.kubernetes_version, vm_size=cfg.aks.vm_size, min_count=cfg.aks.min_count,
            max_count=cfg.aks.max_count, os_disk_size_gb=cfg.aks.os_disk_size_gb, sku_tier=cfg.aks.sku_tier,
            admin_group_object_ids=(groups[cfg.aks.admin_group],) if cfg.aks.admin_group else (),
            authorized_ip_ranges=tuple(cfg.aks.authorized_ip_ranges), private_cluster=cfg.aks.private_cluster,
            log_analytics_workspace_id=self.log_analytics.id,
            vnet_subnet_id=self.network.aks_subnet.id if self.network else None))
        self.registry.grant_pull("aks-kubelet-acr-pull", self.aks.kubelet_object_id)
        if self.network:
            self.network.grant_aks_subnet("aks-subnet-network", self.aks.cluster.identity.principal_id)

        self.event_hubs = InferenceLogHub(self, "event-hubs", InferenceLogHubProps(
            namespace_name=names.eventhub_namespace, hub_name=names.eventhub_inference_logs,
            consumer_group_name=names.consumer_group_monitoring, resource_group_name=rg, location=loc, tags=tags,
            sku=cfg.event_hubs.sku, capacity=cfg.event_hubs.capacity,
            partition_count=cfg.event_hubs.partition_count,
            message_retention_days=cfg.event_hubs.message_retention_days,
            # Capture archives every inference event into the data lake for the monitoring job.
            capture=CaptureProps(storage=self.storage)))

        self.scoring_identity = WorkloadIdentity(self, "scoring-identity", WorkloadIdentityProps(
            name=names.managed_identity("aks-workload"),
            federated_credential_name=names.federated_credential("aks-workload"),
            resource_group_name=rg, location=loc, oidc_issuer_url=self.aks.oidc_issuer_url,
            subject=names.scoring_workload_subject, tags=tags))
        # What the scoring service needs and nothing more: its image, its models, its log hub.
        scoring = self.scoring_identity.principal_id
        self.registry.grant_pull("scoring-acr-pull", scoring)
        self.storage.grant_blob_read("scoring-models-read", scoring, SCORING_MODELS_CONTAINER)
        self.event_hubs.grant_send("scoring-inference-logs-send", scoring)
        self._grant_key_vault()

        self.workspace = MlWorkspace(self, "databricks", MlWorkspaceProps(
            name=names.databricks_workspace, managed_resource_group_name=names.databricks_managed_resource_group,
            resource_group_name=rg, location=loc, tags=tags, sku=cfg.databricks.sku,
            no_public_ip=cfg.databricks.no_public_ip,
            public_network_access=cfg.databricks.public_network_access,
            vnet=self.network.databricks if self.network else None))
        if self.network:
            self._private_endpoints(self.network)
        self._orchestration_and_ml()
        self.predictions_db = self._predictions_database(tags) if cfg.postgres.enabled else None

        for name, value, description in (
            (OUTPUT_WORKSPACE_URL, self.workspace.url, "Databricks workspace URL"),
            (OUTPUT_WORKSPACE_ID, self.workspace.id, "Databricks workspace Azure resource id"),
            (OUTPUT_KEY_VAULT_URI, self.key_vault.uri, "Key Vault URI"),
            (OUTPUT_REGISTRY_LOGIN_SERVER, self.registry.login_server, "registry the scoring image is pushed to"),
            (OUTPUT_SCORING_CLIENT_ID, self.scoring_identity.client_id,
             "client id for the mlkit-scoring service account's workload identity annotation"),
            (OUTPUT_AKS_NAME, self.aks.cluster.name, "AKS cluster name"),
            (OUTPUT_EVENTHUB_NAMESPACE, self.event_hubs.namespace.name, "Event Hubs namespace of inference logs"),
            (OUTPUT_ACCESS_CONNECTOR_ID, self.access_connector.id,
             "Databricks access connector behind the Unity Catalog storage credential"),
        ):
            TerraformOutput(self, name, value=value, description=description, static_id=True)

    # ---- issue 13: Data Factory orchestration, Azure ML workspace + Application Insights ----------
    def _orchestration_and_ml(self) -> None:
        """The optional systems, each only where the environment turns it on."""
        cfg, names = self.cfg, self.cfg.names
        rg, loc, tags = self.resource_group.name, cfg.location, tags_for(cfg.tags, cfg.name)
        private = cfg.network.private
        self.data_factory: OrchestrationFactory | None = None
        self.telemetry: ApplicationTelemetry | None = None
        self.ml_workspace: AzureMlWorkspace | None = None
        self.application_insights_secret_name: str | None = None
        adf = cfg.data_factory
        if adf.enabled:
            self.data_factory = OrchestrationFactory(self, "data-factory", DataFactoryProps(
                names=names, resource_group_name=rg, location=loc, source=adf.source, storage=self.storage,
                databricks_workspace_id=self.workspace.id, private=private, tags=tags))
            if self.network:  # its public endpoint is off: authoring and monitoring from inside the VNet
                self.network.private_endpoint("adf", self.data_factory.id, "dataFactory")
            TerraformOutput(self, OUTPUT_DATA_FACTORY_ID, value=self.data_factory.id, static_id=True,
                            description="Data Factory that orchestrates the jobs (copy to raw, then the Databricks job)")
        if cfg.ml_workspace.enabled:
            self.telemetry = ApplicationTelemetry(self, "application-insights", TelemetryProps(
                name=names.application_insights, resource_group_name=rg, location=loc,
                log_analytics_workspace_id=self.log_analytics.id,
                retention_days=cfg.ml_workspace.application_insights_retention_days, private=private, tags=tags))
            # Terraform writes the secret as the deployer: after the deployer's access policy exists.
            deployer_policy = [p for k, p in self.key_vault.policies.items() if k == "deployer"]
            self.telemetry.store_connection_string(self.key_vault, names.application_insights_secret,
                                                   after=deployer_policy)
            self.application_insights_secret_name = names.application_insights_secret
            # The scoring service sends traces with its workload identity (local authentication is off).
            self.telemetry.grant_publish("scoring-telemetry-publish", self.scoring_identity.principal_id)
            self.ml_workspace = AzureMlWorkspace(self, "ml-workspace", AzureMlWorkspaceProps(
                name=names.ml_workspace, storage_account_name=names.ml_storage_account, resource_group_name=rg,
                location=loc, application_insights_id=self.telemetry.id, vault=self.key_vault,
                container_registry_id=self.registry.id, private=private, high_business_impact=cfg.prod_like,
                storage_replication=cfg.storage.replication, tags=tags))
            if self.network:  # clients in the VNet: the workspace API and its storage
                self.network.private_endpoint("mlw", self.ml_workspace.id, "amlworkspace")
                self.network.private_endpoint("stml-blob", self.ml_workspace.storage.id, "blob")
            # mlkit promote registers the approved versions as the deployer.
            self.ml_workspace.grant_register_models("deployer-register-models", cfg.principals.deployer)
            for name, value, description in (
                (OUTPUT_ML_WORKSPACE_ID, self.ml_workspace.id, "Azure ML workspace promotion registers models into"),
                (OUTPUT_APPINSIGHTS_SECRET, names.application_insights_secret,
                 "Key Vault secret holding the Application Insights connection string (the scoring service's "
                 "APPLICATIONINSIGHTS_CONNECTION_STRING)"),
            ):
                TerraformOutput(self, name, value=value, description=description, static_id=True)

    def _predictions_database(self, tags: dict[str, str]) -> PredictionsDatabase:
        """The BI database and the export job's own identity (an access connector the workspace
        stack's service credential points at): a database role with write on its tables only."""
        cfg, names, pg = self.cfg, self.cfg.names, self.cfg.postgres
        rg, loc = self.resource_group.name, cfg.location
        self.export_connector = UnityCatalogConnector(self, "export-connector", AccessConnectorProps(
            name=names.export_access_connector, resource_group_name=rg, location=loc, tags=tags))
        db = PredictionsDatabase(self, "postgres", PredictionsDatabaseProps(
            server_name=names.postgresql_server, resource_group_name=rg, location=loc, tenant_id=cfg.tenant_id,
            admin_group_name=pg.admin_group, admin_group_object_id=cfg.principals.groups[pg.admin_group],
            table=table_spec(cfg.workloads), database_name=cfg.workloads.export.database,
            version=pg.version, sku_name=pg.sku_name, storage_mb=pg.storage_mb,
            backup_retention_days=pg.backup_retention_days, geo_redundant_backup=pg.geo_redundant_backup,
            high_availability=pg.high_availability, public_network_access=not cfg.network.private, tags=tags))
        db.grant_writer(names.export_access_connector)
        if pg.bi_readers_group:
            db.grant_reader(pg.bi_readers_group)
        if self.network:
            self.network.private_endpoint("psql", db.id, POSTGRES_SUBRESOURCE)
        for name, value, description in (
            (names.postgres_fqdn_output, db.fqdn, "host of the BI database (export task, Power BI)"),
            (names.postgres_setup_sql_output, db.setup_sql(), "run once as the Entra admin group: roles, tables, view, grants"),
            (OUTPUT_EXPORT_CONNECTOR_ID, self.export_connector.id, "access connector behind the export's service credential"),
        ):
            TerraformOutput(self, name, value=value, description=description, static_id=True)
        return db

    def _private_endpoints(self, network: PrivateNetwork) -> None:
        """Every data-plane the platform exposes, reachable from inside the VNet."""
        network.private_endpoint("dbw", self.workspace.id, "databricks_ui_api")
        network.private_endpoint("kv", self.key_vault.id, "vault")
        network.private_endpoint("st-dfs", self.storage.id, "dfs")
        network.private_endpoint("st-blob", self.storage.id, "blob")
        if self.cfg.container_registry.sku == "Premium":  # private link is a Premium feature
            network.private_endpoint("cr", self.registry.id, "registry")
        if self.cfg.event_hubs.sku != "Basic":
            network.private_endpoint("evhns", self.event_hubs.namespace.id, "namespace")

    def _grant_key_vault(self) -> None:
        """Access policies exactly as the environment's key_vault.grants list them."""
        principals = self.cfg.principals
        for grant in self.cfg.key_vault.grants:
            if grant.principal == "deployer":
                object_id = principals.deployer
            elif grant.principal == "databricks":
                object_id = principals.databricks
            elif grant.principal == "aks_workload":
                object_id = self.scoring_identity.principal_id
            else:
                object_id = principals.groups[grant.principal.removeprefix("group:")]
            self.key_vault.grant(grant.principal.replace(":", "-"), object_id, secrets=grant.secrets,
                                 keys=grant.keys, certificates=grant.certificates)
