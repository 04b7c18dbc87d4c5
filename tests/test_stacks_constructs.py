"""Each construct on its own: cdktn.Testing.synth + matchers, secure defaults on, grants exact."""

from __future__ import annotations

import base64
import json
import os

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import cdktn  # noqa: E402
import pytest  # noqa: E402
from cdktn import TerraformStack  # noqa: E402
from mlkit_workloads import graph  # noqa: E402
from mlkit_workloads.settings import WorkloadSettings  # noqa: E402

from envconfig.naming import NamingError, names_for, wheel_filename  # noqa: E402
from stacks.errors import StackInputError  # noqa: E402
from stacks.platform.aks import ScoringCluster, ScoringClusterProps  # noqa: E402
from stacks.platform.databricks_workspace import MlWorkspace, MlWorkspaceProps  # noqa: E402
from stacks.platform.event_hubs import InferenceLogHub, InferenceLogHubProps  # noqa: E402
from stacks.platform.identity import WorkloadIdentity, WorkloadIdentityProps  # noqa: E402
from stacks.platform.key_vault import SecretsVault, SecretsVaultProps, provider_permissions  # noqa: E402
from stacks.platform.registry import ImageRegistry, ImageRegistryProps  # noqa: E402
from stacks.platform.storage import DataLakeProps, DataLakeStorage  # noqa: E402
from stacks.settings_resolution import resolve_workload_settings  # noqa: E402
from stacks.workspace.experiments import TrackingExperiment, TrackingExperimentProps  # noqa: E402
from stacks.workspace.files import SettingsFile, SettingsFileProps, WheelFile, WheelFileProps  # noqa: E402
from stacks.workspace.jobs import GraphJob, GraphJobProps, JobClusterSpec, ScheduleSpec  # noqa: E402
from stacks.workspace.policy import JobClusterPolicy, JobClusterPolicyProps  # noqa: E402
from stacks.workspace.pools import WorkerPool, WorkerPoolProps  # noqa: E402
from stacks.workspace.secret_scope import KeyVaultSecretScope, KeyVaultSecretScopeProps  # noqa: E402

TAGS = {"environment": "test", "managed-by": "mlkit", "owner": "o", "cost-center": "c"}
TENANT = "00000000-0000-0000-0000-000000000000"
OBJECT_ID = "11111111-1111-1111-1111-111111111111"
APP_ID = "66666666-6666-6666-6666-666666666666"
RG = dict(resource_group_name="rg-test", location="westeurope")


def synth(build) -> dict:
    """Build constructs into a fresh stack; return the synthesized stack as parsed JSON (and raw text)."""
    stack = TerraformStack(cdktn.Testing.app(), "test")
    build(stack)
    text = cdktn.Testing.synth(stack)
    doc = json.loads(text)
    doc["__text__"] = text
    return doc


def only(doc: dict, rtype: str) -> dict:
    items = list(doc["resource"][rtype].values())
    assert len(items) == 1, f"expected one {rtype}, got {len(items)}"
    return items[0]


# --------------------------------------------------------------------------- platform


def test_data_lake_is_locked_down_and_grants_one_container() -> None:
    holder = {}

    def build(stack):
        holder["lake"] = lake = DataLakeStorage(stack, "lake", DataLakeProps(
            name="sttest", containers=("raw", "models"), tags=TAGS, blob_soft_delete_days=9,
            container_soft_delete_days=11, **RG))
        lake.grant_blob_read("reader", OBJECT_ID, "models")

    doc = synth(build)
    assert cdktn.Testing.to_have_resource_with_properties(doc["__text__"], "azurerm_storage_account", {
        "name": "sttest", "is_hns_enabled": True, "min_tls_version": "TLS1_2", "https_traffic_only_enabled": True,
        "allow_nested_items_to_be_public": False, "infrastructure_encryption_enabled": True,
        "shared_access_key_enabled": False, "tags": TAGS,
        # Secure default (private): Enabled only so trusted services can pass a deny-all firewall.
        "public_network_access": "Enabled",
        "network_rules": {"default_action": "Deny", "bypass": ["AzureServices"], "ip_rules": []},
        "local_user_enabled": False, "cross_tenant_replication_enabled": False,
        "blob_properties": {"delete_retention_policy": {"days": 9}, "container_delete_retention_policy": {"days": 11}},
    })
    containers = doc["resource"]["azurerm_storage_container"].values()
    assert sorted(c["name"] for c in containers) == ["models", "raw"]
    assert all(c["container_access_type"] == "private" for c in containers)
    grant = only(doc, "azurerm_role_assignment")
    assert grant["role_definition_name"] == "Storage Blob Data Reader"
    assert grant["scope"].startswith("${azurerm_storage_container.") and "models" in grant["scope"]
    with pytest.raises(KeyError, match="no container 'curated'"):
        holder["lake"].grant_blob_read("x", OBJECT_ID, "curated")


def test_key_vault_secure_defaults_and_grants_in_provider_spelling() -> None:
    def build(stack):
        vault = SecretsVault(stack, "kv", SecretsVaultProps(name="kv-test", tenant_id=TENANT, tags=TAGS, **RG))
        vault.grant("ops", OBJECT_ID, secrets=["get", "list"], keys=["unwrapkey"], certificates=["getissuers"])
        vault.grant_secret_read("reader", "22222222-2222-2222-2222-222222222222")

    doc = synth(build)
    vault = only(doc, "azurerm_key_vault")
    assert vault["rbac_authorization_enabled"] is False
    assert vault["purge_protection_enabled"] is True and vault["soft_delete_retention_days"] == 90
    assert vault["network_acls"]["default_action"] == "Deny" and vault["network_acls"]["bypass"] == "AzureServices"
    policies = {p["object_id"]: p for p in doc["resource"]["azurerm_key_vault_access_policy"].values()}
    assert policies[OBJECT_ID]["secret_permissions"] == ["Get", "List"]
    assert policies[OBJECT_ID]["key_permissions"] == ["UnwrapKey"]
    assert policies[OBJECT_ID]["certificate_permissions"] == ["GetIssuers"]
    reader = policies["22222222-2222-2222-2222-222222222222"]
    assert reader["secret_permissions"] == ["Get"] and "key_permissions" not in reader
    assert all(p["key_vault_id"].startswith("${azurerm_key_vault.") for p in policies.values())


def test_key_vault_refuses_empty_grants_and_unknown_permissions() -> None:
    def build(stack):
        SecretsVault(stack, "kv", SecretsVaultProps(name="kv-test", tenant_id=TENANT, **RG)).grant("none", OBJECT_ID)

    with pytest.raises(ValueError, match="grants nothing"):
        synth(build)
    with pytest.raises(KeyError, match="'fly'"):
        provider_permissions(["get", "fly"])


def test_registry_admin_off_and_pull_grant() -> None:
    def build(stack):
        ImageRegistry(stack, "cr", ImageRegistryProps(name="crtest", tags=TAGS, **RG)).grant_pull("aks", OBJECT_ID)

    doc = synth(build)
    assert cdktn.Testing.to_have_resource_with_properties(doc["__text__"], "azurerm_container_registry", {
        "admin_enabled": False, "anonymous_pull_enabled": False, "public_network_access_enabled": False,
        "sku": "Premium", "zone_redundancy_enabled": True, "data_endpoint_enabled": True,
        "retention_policy_in_days": 7})
    grant = only(doc, "azurerm_role_assignment")
    assert grant["role_definition_name"] == "AcrPull" and grant["principal_id"] == OBJECT_ID
    assert grant["principal_type"] == "ServicePrincipal"


def test_registry_without_premium_cannot_be_private() -> None:
    with pytest.raises(StackInputError, match="container_registry.sku"):
        synth(lambda s: ImageRegistry(s, "cr", ImageRegistryProps(name="crtest", sku="Basic", **RG)))


def _cluster_props(**over) -> ScoringClusterProps:
    base = dict(name="aks-test", dns_prefix="test", tenant_id=TENANT, node_pool_name="system",
                node_pool_rotation_name="systemtmp", tags=TAGS, admin_group_object_ids=(OBJECT_ID,), **RG)
    return ScoringClusterProps(**{**base, **over})


def test_aks_entra_rbac_no_local_accounts_workload_identity() -> None:
    doc = synth(lambda s: ScoringCluster(s, "aks", _cluster_props(authorized_ip_ranges=("203.0.113.0/24",))))
    aks = only(doc, "azurerm_kubernetes_cluster")
    assert aks["identity"] == {"type": "SystemAssigned"}
    assert aks["local_account_disabled"] is True and aks["role_based_access_control_enabled"] is True
    assert aks["azure_active_directory_role_based_access_control"]["admin_group_object_ids"] == [OBJECT_ID]
    assert aks["azure_active_directory_role_based_access_control"]["azure_rbac_enabled"] is True
    assert aks["oidc_issuer_enabled"] is True and aks["workload_identity_enabled"] is True
    assert aks["node_provisioning_profile"] == {"mode": "Manual"}
    assert aks["network_profile"]["network_policy"] == "cilium"
    assert aks["api_server_access_profile"]["authorized_ip_ranges"] == ["203.0.113.0/24"]
    pool = aks["default_node_pool"]
    assert pool["auto_scaling_enabled"] is True and (pool["min_count"], pool["max_count"]) == (1, 3)
    assert pool["tags"] == TAGS and aks["tags"] == TAGS


def test_aks_without_ranges_has_no_access_profile_and_rejects_bad_sizes() -> None:
    aks = only(synth(lambda s: ScoringCluster(s, "aks", _cluster_props())), "azurerm_kubernetes_cluster")
    assert "api_server_access_profile" not in aks
    with pytest.raises(StackInputError, match="aks.min_count"):
        synth(lambda s: ScoringCluster(s, "aks", _cluster_props(min_count=4, max_count=2)))


def test_workload_identity_trusts_exactly_one_service_account() -> None:
    subject = names_for("mlk", "dev", "westeurope").scoring_workload_subject
    doc = synth(lambda s: WorkloadIdentity(s, "wi", WorkloadIdentityProps(
        name="id-test", federated_credential_name="fic-test", oidc_issuer_url="https://issuer.example/",
        subject=subject, tags=TAGS, **RG)))
    fic = only(doc, "azurerm_federated_identity_credential")
    assert fic["subject"] == "system:serviceaccount:mlkit:mlkit-scoring"
    assert fic["audience"] == ["api://AzureADTokenExchange"]
    assert fic["user_assigned_identity_id"].startswith("${azurerm_user_assigned_identity.")
    assert only(doc, "azurerm_user_assigned_identity")["tags"] == TAGS
    with pytest.raises(ValueError, match="one service account"):
        synth(lambda s: WorkloadIdentity(s, "wi", WorkloadIdentityProps(
            name="id", federated_credential_name="f", oidc_issuer_url="u", subject="system:serviceaccount:mlkit:*",
            **RG)))


def test_event_hubs_entra_only_and_send_grant_on_the_hub() -> None:
    def build(stack):
        InferenceLogHub(stack, "eh", InferenceLogHubProps(
            namespace_name="evhns-test", hub_name="evh-inference-logs", consumer_group_name="cg-monitoring",
            tags=TAGS, partition_count=4, **RG)).grant_send("scoring", OBJECT_ID)

    doc = synth(build)
    ns = only(doc, "azurerm_eventhub_namespace")
    assert ns["local_authentication_enabled"] is False and ns["minimum_tls_version"] == "1.2"
    hub = only(doc, "azurerm_eventhub")
    assert hub["partition_count"] == 4 and hub["namespace_id"].startswith("${azurerm_eventhub_namespace.")
    assert only(doc, "azurerm_eventhub_consumer_group")["name"] == "cg-monitoring"
    grant = only(doc, "azurerm_role_assignment")
    assert grant["role_definition_name"] == "Azure Event Hubs Data Sender"
    assert grant["scope"].startswith("${azurerm_eventhub.")


def test_databricks_workspace_premium_secure_cluster_connectivity() -> None:
    holder = {}
    doc = synth(lambda s: holder.setdefault("ws", MlWorkspace(s, "dbw", MlWorkspaceProps(
        name="dbw-test", managed_resource_group_name="rg-test-managed", tags=TAGS, **RG))))
    assert cdktn.Testing.to_have_resource_with_properties(doc["__text__"], "azurerm_databricks_workspace", {
        "sku": "premium", "custom_parameters": {"no_public_ip": True},
        "managed_resource_group_name": "rg-test-managed", "infrastructure_encryption_enabled": True})


# --------------------------------------------------------------------------- workspace


def test_instance_pool_is_bounded_and_releases_idle_vms() -> None:
    doc = synth(lambda s: WorkerPool(s, "pool", WorkerPoolProps(
        name="pool-test", node_type="Standard_D4ds_v5", spark_version="15.4.x-scala2.12", tags=TAGS)))
    pool = only(doc, "databricks_instance_pool")
    assert (pool["min_idle_instances"], pool["max_capacity"], pool["idle_instance_autotermination_minutes"]) == (0, 8, 10)
    assert pool["preloaded_spark_versions"] == ["15.4.x-scala2.12"] and pool["custom_tags"] == TAGS


def test_cluster_policy_pins_runtime_pool_size_and_autotermination() -> None:
    doc = synth(lambda s: JobClusterPolicy(s, "policy", JobClusterPolicyProps(
        name="policy-test", spark_version="15.4.x-scala2.12", instance_pool_id="pool-123",
        allowed_node_types=("Standard_D4ds_v5",), max_workers=5, autotermination_minutes=30)))
    definition = json.loads(only(doc, "databricks_cluster_policy")["definition"])
    assert definition["spark_version"] == {"type": "fixed", "value": "15.4.x-scala2.12"}
    assert definition["instance_pool_id"]["type"] == "fixed" and definition["instance_pool_id"]["value"] == "pool-123"
    assert definition["autotermination_minutes"]["value"] == 30
    assert definition["node_type_id"]["values"] == ["Standard_D4ds_v5"]
    assert definition["autoscale.max_workers"] == {"type": "range", "maxValue": 5}
    assert definition["data_security_mode"] == {"type": "fixed", "value": "SINGLE_USER"}


def test_secret_scope_is_key_vault_backed_without_manage_for_all_users() -> None:
    doc = synth(lambda s: KeyVaultSecretScope(s, "scope", KeyVaultSecretScopeProps(
        name="mlk-test-kv", key_vault_id="/subscriptions/x/vaults/kv", key_vault_uri="https://kv.vault.azure.net/")))
    scope = only(doc, "databricks_secret_scope")
    assert scope["backend_type"] == "AZURE_KEYVAULT"
    assert scope["keyvault_metadata"] == {"resource_id": "/subscriptions/x/vaults/kv",
                                          "dns_name": "https://kv.vault.azure.net/"}
    assert "initial_manage_principal" not in scope


def test_experiment_needs_an_absolute_path() -> None:
    doc = synth(lambda s: TrackingExperiment(s, "e", TrackingExperimentProps(name="/Shared/mlk/test/forecast")))
    assert only(doc, "databricks_mlflow_experiment")["name"] == "/Shared/mlk/test/forecast"
    with pytest.raises(ValueError, match="absolute"):
        synth(lambda s: TrackingExperiment(s, "e", TrackingExperimentProps(name="forecast")))


def test_workspace_files_settings_content_and_relative_wheel() -> None:
    def build(stack):
        SettingsFile(stack, "settings", SettingsFileProps(path="/Shared/s.json", settings={"a": 1}))
        WheelFile(stack, "wheel", WheelFileProps(path="/Shared/w.whl", source="../../../dist/w.whl"))

    files = {f["path"]: f for f in synth(build)["resource"]["databricks_workspace_file"].values()}
    assert json.loads(base64.b64decode(files["/Shared/s.json"]["content_base64"])) == {"a": 1}
    assert files["/Shared/w.whl"]["source"] == "../../../dist/w.whl"
    assert files["/Shared/w.whl"]["md5"] == '${filemd5("../../../dist/w.whl")}'
    with pytest.raises(ValueError, match="relative"):
        synth(lambda s: WheelFile(s, "w", WheelFileProps(path="/w.whl", source="/home/me/dist/w.whl")))


def test_graph_job_tasks_come_from_the_graph() -> None:
    job = graph.JOBS["forecast"]
    spec = JobClusterSpec(key="main", instance_pool_id="pool-1", policy_id="policy-1", spark_version="15.4.x-scala2.12")
    doc = synth(lambda s: GraphJob(s, "job", GraphJobProps(
        job=job, name="mlk-test-forecast", env="test", settings_path="/Shared/s.json", wheel_path="/Shared/w.whl",
        cluster=spec, run_as_application_id=APP_ID, schedule=ScheduleSpec("0 0 1 ? * SUN", "UTC", paused=True),
        tags=TAGS)))
    body = only(doc, "databricks_job")
    assert [t["task_key"] for t in body["task"]] == [t.key for t in job.topological_order()]
    for t in body["task"]:
        task = job.task(t["task_key"])
        assert t["python_wheel_task"]["entry_point"] == task.entry_point
        assert t["python_wheel_task"]["parameters"][:4] == ["--env", "test", "--settings", "/Workspace/Shared/s.json"]
        assert [d["task_key"] for d in t.get("depends_on", [])] == list(task.depends_on)
        assert t["library"] == [{"whl": "/Workspace/Shared/w.whl"}]
    assert body["schedule"]["pause_status"] == "PAUSED"
    assert "email_notifications" not in body  # no addresses configured -> no block
    cluster = body["job_cluster"][0]["new_cluster"]
    assert cluster["spark_conf"] == {"spark.sql.adaptive.enabled": "false"}
    assert cluster["instance_pool_id"] == cluster["driver_instance_pool_id"] == "pool-1"
    # Runs as a service principal, on a cluster dedicated to it (Unity Catalog grants apply to it).
    assert body["run_as"] == {"service_principal_name": APP_ID}
    assert (cluster["data_security_mode"], cluster["single_user_name"]) == ("SINGLE_USER", APP_ID)


# --------------------------------------------------------------------------- helpers


def test_settings_resolution_turns_container_paths_into_abfss() -> None:
    names = names_for("mlk", "dev", "westeurope")
    settings = WorkloadSettings.model_validate(
        {"forecast": {"source": {"format": "parquet", "container": "raw", "path": "/sales/"}}})
    data = resolve_workload_settings(settings, names)
    assert data["forecast"]["source"]["path"] == "abfss://raw@stmlkdevweu.dfs.core.windows.net/sales/"
    assert data["forecast"]["source"]["container"] is None
    assert data["classifier"]["source"]["format"] == "islp_default"
    # The jobs must find the experiments and tables the stacks create, not their local defaults.
    assert f'{data["tracking"]["experiment_prefix"]}/forecast' == names.experiment("forecast")
    assert data["tables"]["root"] == "abfss://curated@stmlkdevweu.dfs.core.windows.net/tables"
    explicit = WorkloadSettings.model_validate({"tables": {"root": "/Volumes/main/mlkit/tables"}})
    assert resolve_workload_settings(explicit, names)["tables"]["root"] == "/Volumes/main/mlkit/tables"


def test_wheel_and_state_names() -> None:
    names = names_for("mlk", "dev", "westeurope")
    assert wheel_filename("0.1.0") == "mlkit_workloads-0.1.0-py3-none-any.whl"
    assert names.wheel_path("0.1.0") == "/Shared/mlk/dev/wheels/mlkit_workloads-0.1.0-py3-none-any.whl"
    assert names.state_key("platform") == "dev/dev-platform.tfstate"
    assert names.state_key("workspace", "dev/mlkit.tfstate") == "dev/mlkit.workspace.tfstate"
    with pytest.raises(NamingError, match="PEP 440"):
        wheel_filename("latest")
    with pytest.raises(NamingError, match="no storage container 'gold'"):
        names.abfss_url("gold", "x")
