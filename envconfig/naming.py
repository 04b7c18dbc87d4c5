"""Every physical name and every tag, from one place.

Names follow the Cloud Adoption Framework abbreviations (rg, st, kv, cr, aks, evhns, evh,
dbw, id) and each Azure naming rule is checked here, so a prefix that would produce an
invalid storage account or Key Vault name is rejected when the environment is loaded,
not by Azure halfway through an apply. Pure Python: the loader validates an environment's names
with it, the stacks take every physical name from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Short region codes keep names inside the 24-character limits of storage and Key Vault.
REGION_SHORT = {
    "westeurope": "weu", "northeurope": "neu", "swedencentral": "sdc", "francecentral": "frc",
    "germanywestcentral": "gwc", "uksouth": "uks", "ukwest": "ukw", "switzerlandnorth": "chn",
    "norwayeast": "noe", "eastus": "eus", "eastus2": "eus2", "westus2": "wus2", "westus3": "wus3",
    "centralus": "cus", "canadacentral": "cac", "australiaeast": "aue", "southeastasia": "sea",
    "japaneast": "jpe", "local": "loc",
}


# Azure's fixed private DNS zone per private-link sub-resource (not ours to choose).
PRIVATE_DNS_ZONES = {
    "databricks_ui_api": "privatelink.azuredatabricks.net",
    "vault": "privatelink.vaultcore.azure.net",
    "dfs": "privatelink.dfs.core.windows.net",
    "blob": "privatelink.blob.core.windows.net",
    "registry": "privatelink.azurecr.io",
    "namespace": "privatelink.servicebus.windows.net",
    "postgresqlServer": "privatelink.postgres.database.azure.com",
    # issue 13: Data Factory's authoring/data plane, Azure ML's workspace API
    "dataFactory": "privatelink.datafactory.azure.net",
    "amlworkspace": "privatelink.api.azureml.ms",
}


class NamingError(ValueError):
    """A generated name breaks an Azure naming rule; ``field`` says which config field to change."""

    def __init__(self, message: str, field: str = "name_prefix"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: str
    min_len: int
    max_len: int
    explanation: str

    def check(self, name: str) -> None:
        if not (self.min_len <= len(name) <= self.max_len):
            raise NamingError(
                f"{self.kind} name {name!r} is {len(name)} characters; Azure allows "
                f"{self.min_len}-{self.max_len} ({self.explanation}). Shorten name_prefix or name_suffix."
            )
        if not re.fullmatch(self.pattern, name):
            raise NamingError(f"{self.kind} name {name!r} breaks the Azure rule: {self.explanation}")


RULES = {
    "resource_group": Rule("resource group", r"[A-Za-z0-9_.()-]*[A-Za-z0-9_()-]", 1, 90,
                           "letters, digits, '_', '-', '.', '(', ')'; not ending in '.'"),
    "storage_account": Rule("storage account", r"[a-z0-9]+", 3, 24, "lowercase letters and digits only"),
    "key_vault": Rule("key vault", r"[A-Za-z](?!.*--)[A-Za-z0-9-]*[A-Za-z0-9]", 3, 24,
                      "letters, digits and single hyphens; starts with a letter, ends with a letter or digit"),
    "container_registry": Rule("container registry", r"[A-Za-z0-9]+", 5, 50, "letters and digits only"),
    "kubernetes_cluster": Rule("AKS cluster", r"[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9]", 1, 63,
                               "letters, digits, '_' and '-'; starts and ends with a letter or digit"),
    "eventhub_namespace": Rule("Event Hubs namespace", r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]", 6, 50,
                               "letters, digits and '-'; starts with a letter, ends with a letter or digit"),
    "databricks_workspace": Rule("Databricks workspace", r"[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9]", 3, 64,
                                 "letters, digits, '_' and '-'"),
    "managed_identity": Rule("managed identity", r"[A-Za-z0-9][A-Za-z0-9_-]*", 3, 128,
                             "letters, digits, '_' and '-'; starts with a letter or digit"),
    "databricks_access_connector": Rule("Databricks access connector", r"[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9]",
                                        3, 64, "letters, digits, '_' and '-'"),
    # azurerm validate.FlexibleServerName: ^[a-z0-9]([a-z0-9-]+[a-z0-9])?$, at most 63.
    "postgresql_server": Rule("PostgreSQL flexible server", r"[a-z0-9]([a-z0-9-]+[a-z0-9])?", 3, 63,
                              "lowercase letters, digits and '-'; starts and ends with a letter or digit"),
}

# Names of the optional systems (issue 13), checked only where the environment turns them on
# (envconfig/orchestration.py): the provider's own validation (terraform-provider-azurerm,
# datafactory/validate.DataFactoryName, machinelearning/validate.WorkspaceName).
OPTIONAL_RULES = {
    "data_factory": Rule("data factory", r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", 3, 63,
                         "letters, digits and single hyphens, starting and ending with a letter or digit"),
    "ml_workspace": Rule("Azure ML workspace", r"[a-zA-Z0-9][\w-]{2,32}", 3, 33,
                         "3-33 letters, digits, '_' and '-', starting with a letter or digit"),
    "ml_storage_account": Rule("storage account", r"[a-z0-9]+", 3, 24, "lowercase letters and digits only"),
    "application_insights": Rule("Application Insights", r"[^%&\\?/]+", 1, 260, "no %&\\?/ characters"),
}

PREFIX_PATTERN = r"[a-z][a-z0-9]{1,9}"
ENV_PATTERN = r"[a-z][a-z0-9]{1,9}"

MANDATORY_TAGS = ("owner", "cost-center", "environment")


@dataclass(frozen=True)
class Names:
    """All names for one environment. Construct with :func:`names_for`."""

    prefix: str
    env: str
    region: str
    suffix: str = ""

    # -- Azure -------------------------------------------------------------
    def _dashed(self, abbr: str, *extra: str) -> str:
        parts = [abbr, self.prefix, self.env, self.region, *extra]
        if self.suffix:
            parts.append(self.suffix)
        return "-".join(parts)

    def _compact(self, abbr: str) -> str:
        return f"{abbr}{self.prefix}{self.env}{self.region}{self.suffix}".lower()

    @property
    def resource_group(self) -> str:
        return self._dashed("rg")

    @property
    def databricks_managed_resource_group(self) -> str:
        return self._dashed("rg", "dbw", "managed")

    @property
    def storage_account(self) -> str:
        return self._compact("st")

    @property
    def key_vault(self) -> str:
        return self._dashed("kv")

    @property
    def container_registry(self) -> str:
        return self._compact("cr")

    @property
    def kubernetes_cluster(self) -> str:
        return self._dashed("aks")

    @property
    def kubernetes_dns_prefix(self) -> str:
        return f"{self.prefix}-{self.env}-{self.region}"

    @property
    def eventhub_namespace(self) -> str:
        return self._dashed("evhns")

    eventhub_inference_logs = "evh-inference-logs"
    consumer_group_monitoring = "cg-monitoring"

    @property
    def databricks_workspace(self) -> str:
        return self._dashed("dbw")

    @property
    def log_analytics_workspace(self) -> str:
        return self._dashed("log")

    @property
    def databricks_access_connector(self) -> str:
        """The managed identity Unity Catalog reaches the data lake with (CAF: dbac)."""
        return self._dashed("dbac")

    # -- The BI database (export of batch predictions) ------------------------
    @property
    def postgresql_server(self) -> str:
        return self._dashed("psql")

    @property
    def postgresql_fqdn(self) -> str:
        """Host the export job connects to (public DNS resolves to the private endpoint where private)."""
        return f"{self.postgresql_server}.postgres.database.azure.com"

    @property
    def export_access_connector(self) -> str:
        """The export job's own managed identity (a Databricks access connector): its database role's name."""
        return self._dashed("dbac", "export")

    @property
    def export_service_credential(self) -> str:
        """Unity Catalog service credential on that connector: how the job asks it for a token."""
        return self._catalog("cred", "export")

    # -- Network (VNet injection for Databricks, private endpoints) -----------
    @property
    def virtual_network(self) -> str:
        return self._dashed("vnet")

    def subnet(self, purpose: str) -> str:
        return self._dashed("snet", purpose)

    def network_security_group(self, purpose: str) -> str:
        return self._dashed("nsg", purpose)

    def private_endpoint(self, target: str) -> str:
        return self._dashed("pe", target)

    def managed_identity(self, purpose: str) -> str:
        return self._dashed("id", purpose)

    def federated_credential(self, purpose: str) -> str:
        return self._dashed("fic", purpose)

    # AKS node pool names: 1-12 lowercase alphanumerics (Linux pools).
    aks_system_node_pool = "system"
    aks_system_node_pool_rotation = "systemtmp"

    # The scoring service's Kubernetes identity; the federated credential trusts exactly this.
    scoring_namespace = "mlkit"
    scoring_service_account = "mlkit-scoring"

    # The scoring service's image (in the environment's ACR) and its Kubernetes objects.
    scoring_image_repository = "mlkit-scoring"
    scoring_app = "mlkit-scoring"
    # Key Vault secret with Application Insights' connection string; the scoring service reads it
    # into APPLICATIONINSIGHTS_CONNECTION_STRING at start (serving stack: MLKIT_APPINSIGHTS_SECRET_NAME).
    application_insights_secret = "appinsights-connection-string"

    def scoring_image_ref(self, version: str) -> str:
        """``repository:tag`` of the scoring image in the environment's ACR (what the deploy pushes
        and the serving stack runs): the tag is the workloads version."""
        return f"{self.scoring_image_repository}:{version}"

    @property
    def scoring_principal(self) -> str:
        """Display name of the scoring identity where it is registered outside Azure (Databricks)."""
        return self.managed_identity("aks-workload")

    @property
    def scoring_workload_subject(self) -> str:
        return f"system:serviceaccount:{self.scoring_namespace}:{self.scoring_service_account}"

    def abfss_url(self, container: str, path: str = "") -> str:
        """ADLS Gen2 URL of ``path`` inside one of this environment's containers."""
        if container not in self.CONTAINERS:
            raise NamingError(f"no storage container {container!r} (containers: {', '.join(self.CONTAINERS)})",
                              field="container")
        return f"abfss://{container}@{self.storage_account}.dfs.core.windows.net/{path.lstrip('/')}"

    # Storage containers (3-63 lowercase letters, digits, hyphens).
    CONTAINERS = ("raw", "curated", "models", "inference-logs")

    # -- issue 13: Data Factory (CAF adf), Azure ML (mlw), Application Insights (appi) ---------
    @property
    def data_factory(self) -> str:
        return self._dashed("adf")

    @property
    def data_factory_databricks_identity(self) -> str:
        """The user-assigned identity the factory calls Databricks as (a system-assigned identity
        exports no client id, and the workspace registers a service principal by client id)."""
        return self.managed_identity("adf-databricks")

    # A factory's child resources (validate.LinkedServiceDatasetName / DataFactoryPipelineAndTriggerName).
    adf_credential = "cred-databricks"
    adf_integration_runtime = "ir-managed-vnet"
    adf_linked_service_sql = "ls-sql-source"
    adf_linked_service_raw = "ls-adls-raw"
    adf_linked_service_databricks = "ls-databricks"

    @staticmethod
    def adf_dataset_sql(table: str) -> str:
        return "ds_sql_" + table.replace(".", "_")

    @staticmethod
    def adf_dataset_raw(table: str) -> str:
        return "ds_raw_" + table.replace(".", "_")

    @staticmethod
    def adf_pipeline(job: str) -> str:
        return f"pl-{job}"

    @staticmethod
    def adf_trigger(job: str) -> str:
        return f"tr-{job}-schedule"

    @staticmethod
    def adf_managed_private_endpoint(target: str) -> str:
        return f"mpe-{target}"

    @property
    def ml_workspace(self) -> str:
        return self._dashed("mlw")

    @property
    def ml_storage_account(self) -> str:
        """Azure ML's own storage: a workspace cannot use the data lake (hierarchical namespace)."""
        return self._compact("stml")

    @property
    def application_insights(self) -> str:
        return self._dashed("appi")

    # The scoring service reads it into APPLICATIONINSIGHTS_CONNECTION_STRING (serving stack).
    application_insights_secret = "appinsights-connection-string"

    # -- Databricks workspace objects ---------------------------------------
    def instance_pool(self, pool: str) -> str:
        return f"pool-{self.prefix}-{self.env}-{pool}"

    @property
    def cluster_policy(self) -> str:
        return f"policy-{self.prefix}-{self.env}-jobs"

    @property
    def secret_scope(self) -> str:
        return f"{self.prefix}-{self.env}-kv"

    def job(self, job: str) -> str:
        return f"{self.prefix}-{self.env}-{job}"

    @property
    def experiment_folder(self) -> str:
        return f"/Shared/{self.prefix}/{self.env}"

    def experiment(self, job: str) -> str:
        # The jobs name their experiment <tracking.experiment_prefix>/<job>; the stacks set that
        # prefix to experiment_folder, so both sides meet at this path.
        return f"{self.experiment_folder}/{job}"

    @property
    def settings_file(self) -> str:
        return f"/Shared/{self.prefix}/{self.env}/settings.json"

    @property
    def wheel_volume_path(self) -> str:
        return f"/Shared/{self.prefix}/{self.env}/wheels"

    def wheel_path(self, version: str) -> str:
        """Workspace path the workloads wheel is uploaded to (jobs install it from /Workspace + this)."""
        return f"{self.wheel_volume_path}/{wheel_filename(version)}"

    job_cluster_key = "main"

    # -- Unity Catalog (metastore-wide names: one metastore per region serves every environment,
    # so the environment and region are part of each name; underscores need no SQL quoting) ----
    def _catalog(self, abbr: str, *extra: str) -> str:
        return "_".join(p.replace("-", "_") for p in (abbr, self.prefix, self.env, self.region, *extra, self.suffix) if p)

    @property
    def storage_credential(self) -> str:
        return self._catalog("sc", "datalake")

    def external_location(self, container: str) -> str:
        if container not in self.CONTAINERS:
            raise NamingError(f"no storage container {container!r} (containers: {', '.join(self.CONTAINERS)})",
                              field="container")
        return self._catalog("el", container)

    # -- Terraform ------------------------------------------------------------
    @property
    def platform_stack(self) -> str:
        return f"{self.env}-platform"

    @property
    def workspace_stack(self) -> str:
        return f"{self.env}-workspace"

    @property
    def serving_stack(self) -> str:
        return f"{self.env}-serving"

    # Output of the serving stack naming the image it runs; `mlkit deploy` builds exactly that one.
    scoring_image_output = "scoring_image"
    # Outputs of the platform stack that `mlkit deploy`'s database step reads (host, then the SQL it runs).
    postgres_fqdn_output = "postgres_fqdn"
    postgres_setup_sql_output = "postgres_setup_sql"

    def state_key(self, stack_kind: str, configured: str | None = None) -> str:
        """Blob name of a stack's Terraform state. Each stack needs its own state, so a configured
        key ``dev/mlkit.tfstate`` becomes ``dev/mlkit.platform.tfstate`` / ``dev/mlkit.workspace.tfstate``."""
        if not configured:
            return f"{self.env}/{self.env}-{stack_kind}.tfstate"
        stem = configured.removesuffix(".tfstate")
        return f"{stem}.{stack_kind}.tfstate"

    def validate(self) -> None:
        """Raise NamingError for the first generated name that breaks an Azure rule."""
        for kind, rule in RULES.items():
            name = self.managed_identity("aks-workload") if kind == "managed_identity" else getattr(self, kind)
            rule.check(name)


WORKLOADS_DISTRIBUTION = "mlkit_workloads"


def wheel_filename(version: str) -> str:
    """File name of the workloads wheel that ``python -m build workloads`` writes into dist/."""
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?(\.post[0-9]+)?(\.dev[0-9]+)?", version):
        raise NamingError(f"workloads version {version!r} is not a PEP 440 release like '0.1.0'", field="version")
    return f"{WORKLOADS_DISTRIBUTION}-{version}-py3-none-any.whl"


def region_short(location: str, override: str | None = None) -> str:
    if override:
        return override
    try:
        return REGION_SHORT[location]
    except KeyError:
        raise NamingError(
            f"location {location!r} has no short code; set 'location_short' (2-4 lowercase letters/digits)",
            field="location_short",
        ) from None


def names_for(prefix: str, env: str, location: str, suffix: str = "", location_short: str | None = None) -> Names:
    if not re.fullmatch(PREFIX_PATTERN, prefix):
        raise NamingError(f"name_prefix {prefix!r} must be 2-10 lowercase letters/digits starting with a letter")
    if not re.fullmatch(ENV_PATTERN, env):
        raise NamingError(f"environment name {env!r} must be 2-10 lowercase letters/digits starting with a letter",
                          field="name")
    if suffix and not re.fullmatch(r"[a-z0-9]{1,6}", suffix):
        raise NamingError(f"name_suffix {suffix!r} must be 1-6 lowercase letters/digits", field="name_suffix")
    return Names(prefix, env, region_short(location, location_short), suffix)


def tags_for(env_tags: dict[str, str], env: str) -> dict[str, str]:
    """The tags every taggable resource carries: the environment's mandatory tags plus provenance."""
    tags = dict(env_tags)
    tags.setdefault("environment", env)
    tags["managed-by"] = "mlkit"
    return dict(sorted(tags.items()))
