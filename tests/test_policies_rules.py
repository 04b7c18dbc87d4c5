"""Every rule: one fixture stack that passes and one that fails, asserting the rule id and the message.

All fixture stacks live in one App synthesized once for the module (the aspects run during that
synth), built from the real provider classes. Fixtures start from a compliant resource and change
the one attribute the rule is about.
"""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cdktn import App, TerraformOutput, TerraformStack  # noqa: E402
from cdktn_provider_azurerm.container_registry import ContainerRegistry  # noqa: E402
from cdktn_provider_azurerm.databricks_workspace import DatabricksWorkspace  # noqa: E402
from cdktn_provider_azurerm.eventhub_namespace import EventhubNamespace  # noqa: E402
from cdktn_provider_azurerm.key_vault import KeyVault  # noqa: E402
from cdktn_provider_azurerm.key_vault_access_policy import KeyVaultAccessPolicyA  # noqa: E402
from cdktn_provider_azurerm.kubernetes_cluster import KubernetesCluster  # noqa: E402
from cdktn_provider_azurerm.provider import AzurermProvider  # noqa: E402
from cdktn_provider_azurerm.storage_account import StorageAccount  # noqa: E402
from cdktn_provider_databricks.cluster_policy import ClusterPolicy  # noqa: E402
from cdktn_provider_databricks.instance_pool import InstancePool  # noqa: E402
from cdktn_provider_databricks.job import Job, JobJobCluster, JobTask, JobTaskLibrary  # noqa: E402
from cdktn_provider_databricks.mlflow_experiment import MlflowExperiment, MlflowExperimentTags  # noqa: E402
from cdktn_provider_databricks.provider import DatabricksProvider  # noqa: E402
from cdktn_provider_databricks.secret_scope import SecretScope  # noqa: E402

from envconfig.loader import load_environment  # noqa: E402
from envconfig.naming import tags_for  # noqa: E402
from policies.engine import RULES, PolicyRun  # noqa: E402
from policies.model import Finding  # noqa: E402

PROD = load_environment("prod", "environments", env={})
DEV = load_environment("dev", "environments", env={})
N = PROD.names
TAGS = tags_for(PROD.tags, "prod")
RG = {"resource_group_name": N.resource_group, "location": "westeurope"}
TENANT = PROD.tenant_id
DEPLOYER = PROD.principals.deployer
OTHER = "55555555-5555-5555-5555-555555555555"


def storage(s, **over):
    kw = dict(name=N.storage_account, **RG, account_tier="Standard", account_replication_type="ZRS",
              https_traffic_only_enabled=True, min_tls_version="TLS1_2", allow_nested_items_to_be_public=False,
              infrastructure_encryption_enabled=True, tags=TAGS,
              blob_properties={"delete_retention_policy": {"days": 7},
                               "container_delete_retention_policy": {"days": 7}})
    kw.update(over)
    StorageAccount(s, "storage", **kw)


def vault(s, **over):
    kw = dict(name=N.key_vault, **RG, sku_name="standard", tenant_id=TENANT, rbac_authorization_enabled=False,
              soft_delete_retention_days=90, purge_protection_enabled=True, tags=TAGS,
              network_acls={"default_action": "Deny", "bypass": "AzureServices"})
    kw.update(over)
    KeyVault(s, "vault", **kw)


def access(s, **over):
    kw = dict(key_vault_id="/subscriptions/x/kv", tenant_id=TENANT, object_id=OTHER, secret_permissions=["Get"])
    kw.update(over)
    KeyVaultAccessPolicyA(s, "access", **kw)


def registry(s, **over):
    kw = dict(name=N.container_registry, **RG, sku="Premium", admin_enabled=False,
              public_network_access_enabled=False, tags=TAGS)
    kw.update(over)
    ContainerRegistry(s, "registry", **kw)


def aks(s, pool=None, **over):
    node_pool = {"name": "system", "vm_size": "Standard_D4ds_v5", "auto_scaling_enabled": True,
                 "min_count": 1, "max_count": 3}
    node_pool.update(pool or {})
    kw = dict(name=N.kubernetes_cluster, **RG, dns_prefix=N.kubernetes_dns_prefix, default_node_pool=node_pool,
              identity={"type": "SystemAssigned"}, node_provisioning_profile={"mode": "Manual"},
              role_based_access_control_enabled=True, local_account_disabled=True,
              azure_active_directory_role_based_access_control={"azure_rbac_enabled": True, "tenant_id": TENANT},
              network_profile={"network_plugin": "azure", "network_policy": "cilium"},
              api_server_access_profile={"authorized_ip_ranges": ["203.0.113.0/24"]}, tags=TAGS)
    kw.update(over)
    KubernetesCluster(s, "aks", **kw)


def eventhubs(s, **over):
    kw = dict(name=N.eventhub_namespace, **RG, sku="Standard", minimum_tls_version="1.2",
              local_authentication_enabled=False, tags=TAGS)
    kw.update(over)
    EventhubNamespace(s, "eventhubs", **kw)


def workspace(s, **over):
    kw = dict(name=N.databricks_workspace, **RG, sku="premium", custom_parameters={"no_public_ip": True},
              public_network_access_enabled=False, managed_resource_group_name=N.databricks_managed_resource_group,
              tags=TAGS)
    kw.update(over)
    DatabricksWorkspace(s, "workspace", **kw)


def pool(s, **over):
    kw = dict(instance_pool_name=N.instance_pool("default"), idle_instance_autotermination_minutes=10,
              max_capacity=4, node_type_id="Standard_D4ds_v5", custom_tags=TAGS)
    kw.update(over)
    InstancePool(s, "pool", **kw)


POLICY = {
    "spark_version": {"type": "fixed", "value": "15.4.x-scala2.12"},
    "node_type_id": {"type": "allowlist", "values": ["Standard_D4ds_v5"]},
    "autotermination_minutes": {"type": "fixed", "value": 20},
    "autoscale.max_workers": {"type": "range", "maxValue": 6},
    "num_workers": {"type": "range", "maxValue": 6},
}


def policy(s, drop=(), **change):
    doc = {k: v for k, v in POLICY.items() if k not in drop}
    doc.update(change)
    ClusterPolicy(s, "policy", name=N.cluster_policy, definition=json.dumps(doc))


WHEEL = "/Workspace/Shared/mlk/prod/wheels/mlkit_workloads-0.1.0-py3-none-any.whl"


def job(s, task=None, cluster=None, **over):
    new_cluster = {"instance_pool_id": "pool-1", "policy_id": "policy-1", "spark_version": "15.4.x-scala2.12",
                   "num_workers": 1}
    new_cluster.update(cluster or {})
    t = {"task_key": "train", "job_cluster_key": "main", "library": [{"whl": WHEEL}],
         "python_wheel_task": {"package_name": "mlkit_workloads", "entry_point": "mlkit-train",
                               "parameters": ["--env", "prod", "--password-secret", "jdbc-password"]}}
    t.update(task or {})
    t["library"] = [JobTaskLibrary(**lib) for lib in t.get("library") or []]
    # Lists of blocks need the struct classes (jsii converts dicts only for single blocks).
    kw = dict(name=N.job("forecast"), job_cluster=[JobJobCluster(job_cluster_key="main", new_cluster=new_cluster)],
              task=[JobTask(**{k: v for k, v in t.items() if v is not None})],
              email_notifications={"on_failure": ["ml-platform-alerts@example.com"]},
              timeout_seconds=3600, max_concurrent_runs=1, tags=TAGS)
    kw.update(over)
    Job(s, "job", **kw)


def scope(s, **over):
    kw = dict(name=N.secret_scope, backend_type="AZURE_KEYVAULT",
              keyvault_metadata={"resource_id": "/subscriptions/x/kv", "dns_name": "https://kv.vault.azure.net/"})
    kw.update(over)
    SecretScope(s, "scope", **kw)


def databricks_provider(s, **over):
    kw = dict(host="https://adb-1.azuredatabricks.net", azure_workspace_resource_id="/subscriptions/x/dbw")
    kw.update(over)
    DatabricksProvider(s, "dbx", **kw)


PAT = "dapi" + "0123456789abcdef" * 2
# rule id -> (environment, passing fixture, failing fixture, words the failure message contains)
CASES = {
    "MLK-ST-001": (PROD, storage, lambda s: storage(s, https_traffic_only_enabled=False), "plain HTTP"),
    "MLK-ST-002": (PROD, storage, lambda s: storage(s, min_tls_version="TLS1_0"), '"TLS1_0"; it must be TLS1_2'),
    "MLK-ST-003": (PROD, storage, lambda s: storage(s, allow_nested_items_to_be_public=True),
                   "allow_nested_items_to_be_public is true"),
    "MLK-ST-004": (PROD, storage, lambda s: storage(s, infrastructure_encryption_enabled=False),
                   "infrastructure_encryption_enabled is false"),
    "MLK-ST-005": (PROD, storage, lambda s: storage(s, blob_properties={"container_delete_retention_policy": {
        "days": 7}}), "delete_retention_policy is not set"),
    "MLK-ST-006": (PROD, storage, lambda s: storage(s, blob_properties={"delete_retention_policy": {"days": 7}}),
                   "container_delete_retention_policy is not set"),
    "MLK-KV-001": (PROD, vault, lambda s: vault(s, soft_delete_retention_days=30),
                   "soft_delete_retention_days is 30; this environment needs at least 90"),
    "MLK-KV-002": (PROD, vault, lambda s: vault(s, purge_protection_enabled=False),
                   "purge_protection_enabled is false"),
    "MLK-KV-003": (PROD, vault, lambda s: vault(s, network_acls={"default_action": "Allow", "bypass": "None"}),
                   'default_action is "Allow"'),
    "MLK-KV-004": (PROD, access, lambda s: access(s, secret_permissions=[
        "Get", "List", "Set", "Delete", "Recover", "Backup", "Restore", "Purge"]),
        "secret_permissions grants all 8 permissions"),
    "MLK-KV-005": (PROD, lambda s: access(s, object_id=DEPLOYER, secret_permissions=["Get", "Purge"]),
                   lambda s: access(s, secret_permissions=["Get", "Purge"]), "grants Purge to"),
    "MLK-CR-001": (PROD, registry, lambda s: registry(s, admin_enabled=True), "shared admin password"),
    "MLK-CR-002": (PROD, registry, lambda s: registry(s, public_network_access_enabled=True),
                   "public_network_access_enabled is true"),
    "MLK-AKS-001": (PROD, aks, lambda s: aks(s, azure_active_directory_role_based_access_control=None),
                    "no Entra ID integration"),
    "MLK-AKS-002": (PROD, aks, lambda s: aks(s, local_account_disabled=False), "local_account_disabled is false"),
    "MLK-AKS-003": (PROD, aks, lambda s: aks(s, pool={"auto_scaling_enabled": False, "min_count": None,
                                                      "max_count": None, "node_count": 2}),
                    "auto_scaling_enabled is not true"),
    "MLK-AKS-004": (PROD, aks, lambda s: aks(s, network_profile={"network_plugin": "azure"}),
                    "network_policy is not set"),
    "MLK-AKS-005": (PROD, aks, lambda s: aks(s, api_server_access_profile=None), "the API server is public"),
    "MLK-EH-001": (PROD, eventhubs, lambda s: eventhubs(s, minimum_tls_version="1.1"), '"1.1"; it must be 1.2'),
    "MLK-EH-002": (PROD, eventhubs, lambda s: eventhubs(s, local_authentication_enabled=True),
                   "SAS keys stay usable"),
    "MLK-DBW-001": (PROD, workspace, lambda s: workspace(s, sku="standard"), '"standard"; the platform needs premium'),
    "MLK-DBW-002": (PROD, workspace, lambda s: workspace(s, custom_parameters={"no_public_ip": False}),
                    "no_public_ip is false"),
    "MLK-DBW-003": (PROD, workspace, lambda s: workspace(s, public_network_access_enabled=True),
                    "public_network_access_enabled is true"),
    "MLK-DB-001": (PROD, pool, lambda s: pool(s, idle_instance_autotermination_minutes=10000),
                   "is 10000; this environment allows at most 20"),
    "MLK-DB-002": (PROD, pool, lambda s: pool(s, max_capacity=None), "max_capacity is not set"),
    "MLK-DB-003": (PROD, policy, lambda s: policy(s, drop=("autotermination_minutes",)),
                   "autotermination_minutes is not constrained"),
    "MLK-DB-004": (PROD, policy, lambda s: policy(s, node_type_id={"type": "unlimited"}),
                   "node_type_id is not restricted"),
    "MLK-DB-005": (PROD, policy, lambda s: policy(s, num_workers={"type": "range", "maxValue": 500}),
                   "num_workers allows up to 500"),
    "MLK-DB-006": (PROD, policy, lambda s: policy(s, spark_version={"type": "fixed", "value": "15.3.x-scala2.12"}),
                   '"15.3.x-scala2.12" is not a long-term-support runtime'),
    "MLK-DB-007": (PROD, job, lambda s: job(s, task={"job_cluster_key": None, "existing_cluster_id": "0101-abc"}),
                   "runs on an all-purpose cluster"),
    "MLK-DB-008": (PROD, job, lambda s: job(s, email_notifications=None), "no one is notified"),
    "MLK-DB-009": (PROD, job, lambda s: job(s, timeout_seconds=None, max_concurrent_runs=None),
                   "timeout_seconds is unset"),
    "MLK-DB-010": (PROD, job, lambda s: job(s, task={"library": [{"whl": "/Workspace/wheels/mlkit_workloads.whl"}]}),
                   "has no version in its file name"),
    "MLK-DB-011": (PROD, scope, lambda s: scope(s, backend_type="DATABRICKS", keyvault_metadata=None),
                   '"DATABRICKS"; it must be AZURE_KEYVAULT'),
    "MLK-GOV-001": (PROD, lambda s: MlflowExperiment(s, "exp", name=N.experiment("forecast"),
                                                     tags=[MlflowExperimentTags(key=k, value=v) for k, v in TAGS.items()]),
                    lambda s: storage(s, tags={"environment": "prod"}), "tags lacks owner, cost-center"),
    "MLK-GOV-002": (PROD, vault, lambda s: vault(s, name="kv-handmade"), '"kv-handmade"; the naming module says'),
    "MLK-GOV-003": (PROD, job, lambda s: job(s, task={"python_wheel_task": {
        "package_name": "mlkit_workloads", "entry_point": "mlkit-train", "parameters": ["--token", PAT]}}),
        "holds a Databricks personal access token"),
    "MLK-GOV-004": (PROD, databricks_provider, lambda s: databricks_provider(s, token="${var.databricks_token}"),
                    "sets token"),
}
NOT_ELEMENT_RULES = {"MLK-SUP-001", "MLK-SUP-002", "MLK-SUP-003", "MLK-SUP-004", "MLK-ENG-001"}


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> dict[str, list[Finding]]:
    """stack name -> findings; one synth of every fixture stack."""
    app = App(outdir=str(tmp_path_factory.mktemp("rules")), skip_validation=True)
    run = PolicyRun()
    for rule_id, (cfg, ok, bad, _) in CASES.items():
        for variant, build in (("pass", ok), ("fail", bad)):
            stack = TerraformStack(app, f"{rule_id}-{variant}")
            AzurermProvider(stack, "azurerm", features=[{}])
            if rule_id != "MLK-GOV-004":
                databricks_provider(stack)
            build(stack)
            run.hook(stack, cfg)
    app.synth()
    out: dict[str, list[Finding]] = {}
    for f in run.evaluate().findings:
        out.setdefault(f.stack, []).append(f)
    return out


def test_every_rule_has_a_passing_and_a_failing_fixture():
    assert set(CASES) | NOT_ELEMENT_RULES == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_failing_fixture_reports_the_rule(findings, rule_id):
    words = CASES[rule_id][3]
    hits = [f for f in findings.get(f"{rule_id}-fail", []) if f.rule_id == rule_id]
    assert hits, f"{rule_id} did not fire; findings: {[(f.rule_id, f.message) for f in findings.get(rule_id + '-fail', [])]}"
    assert any(words in f.message for f in hits), [f.message for f in hits]
    f = hits[0]
    assert f.severity == RULES[rule_id].severity and f.title == RULES[rule_id].title
    assert f.path.startswith(f"{rule_id}-fail/") and f.address  # construct path and Terraform address


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_passing_fixture_is_clean_for_the_rule(findings, rule_id):
    hits = [f for f in findings.get(f"{rule_id}-pass", []) if f.rule_id == rule_id]
    assert not hits, [f.message for f in hits]


def test_fixture_findings_carry_construct_path_and_address(findings):
    f = next(f for f in findings["MLK-ST-003-fail"] if f.rule_id == "MLK-ST-003")
    assert f.path == "MLK-ST-003-fail/storage"
    assert f.address == "azurerm_storage_account.storage"
    assert f.env == "prod" and f.blocking


def test_prod_only_rules_do_not_apply_to_dev(tmp_path):
    app = App(outdir=str(tmp_path), skip_validation=True)
    run = PolicyRun()
    stack = TerraformStack(app, "dev-case")
    vault(stack, purge_protection_enabled=False, network_acls=None, soft_delete_retention_days=7,
          name=DEV.names.key_vault, tags=tags_for(DEV.tags, "dev"))
    registry(stack, public_network_access_enabled=True, name=DEV.names.container_registry,
             tags=tags_for(DEV.tags, "dev"))
    run.hook(stack, DEV)
    app.synth()
    assert [f.rule_id for f in run.evaluate().findings] == []


def test_references_count_as_set(tmp_path):
    """Unresolved tokens (a variable, another resource's attribute) are never treated as violations."""
    from cdktn import TerraformVariable

    app = App(outdir=str(tmp_path), skip_validation=True)
    run = PolicyRun()
    stack = TerraformStack(app, "refs")
    minutes = TerraformVariable(stack, "minutes", type="number")
    pool(stack, idle_instance_autotermination_minutes=minutes.number_value)
    purge = TerraformVariable(stack, "purge", type="bool")
    vault(stack, purge_protection_enabled=purge.boolean_value)
    TerraformOutput(stack, "vault_uri", value="${azurerm_key_vault.vault.vault_uri}")
    run.hook(stack, PROD)
    app.synth()
    assert [f.rule_id for f in run.evaluate().findings] == []


def test_a_crashing_rule_is_reported_not_raised(tmp_path):
    """MLK-ENG-001: a rule bug becomes an error finding, the synth still completes."""
    from policies.model import Rule

    def boom(el, ctx):
        raise KeyError("oops")
        yield  # pragma: no cover

    rules = dict(RULES)
    rules["MLK-X-001"] = Rule("MLK-X-001", "test", "error", "explodes", "why", "fix", boom,
                              types=("azurerm_storage_account",))
    app = App(outdir=str(tmp_path), skip_validation=True)
    run = PolicyRun(rules=rules)
    ok_stack, bad_stack = TerraformStack(app, "eng-pass"), TerraformStack(app, "eng-fail")
    vault(ok_stack)
    storage(bad_stack)
    run.hook(ok_stack, PROD)
    run.hook(bad_stack, PROD)
    app.synth()
    eng = [f for f in run.evaluate().findings if f.rule_id == "MLK-ENG-001"]
    assert [(f.stack, f.address) for f in eng] == [("eng-fail", "azurerm_storage_account.storage")]
    assert "MLK-X-001 failed: KeyError" in eng[0].message
