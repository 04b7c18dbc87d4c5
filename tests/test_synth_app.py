"""The whole app, synthesized once for every environment and read back as Terraform JSON."""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import os
import re
from pathlib import Path

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest  # noqa: E402
from databricks.sdk.service.jobs import JobSettings  # noqa: E402
from mlkit_workloads import __version__ as workloads_version  # noqa: E402
from mlkit_workloads import graph  # noqa: E402
from mlkit_workloads.settings import WorkloadSettings  # noqa: E402

from envconfig.infra import Backend  # noqa: E402
from envconfig.loader import load_all  # noqa: E402
from envconfig.naming import PRIVATE_DNS_ZONES, RULES, Names, tags_for, wheel_filename  # noqa: E402
from stacks.app import build_app  # noqa: E402
from stacks.data_access import JOB_CONTAINER_ACCESS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLOUD = ("dev", "staging", "prod")
LOCAL_BACKEND_ENV = "citest"  # a copy of dev with a local backend, as tests would use


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    configs = load_all(REPO / "environments")
    dev = configs["dev"]
    configs[LOCAL_BACKEND_ENV] = dev.model_copy(update={
        "name": LOCAL_BACKEND_ENV, "tags": {**dev.tags, "environment": LOCAL_BACKEND_ENV},
        "backend": Backend(type="local", path="state")})
    outdir = tmp_path_factory.mktemp("synth") / "cdktf.out"
    hooked: list[tuple[str, str]] = []
    app = build_app(configs, str(outdir), stack_hook=lambda stack, cfg: hooked.append((stack.node.id, cfg.name)))
    app.synth()
    manifest = json.loads((outdir / "manifest.json").read_text())
    docs = {n: json.loads((outdir / s["synthesizedStackPath"]).read_text()) for n, s in manifest["stacks"].items()}
    return {"configs": configs, "outdir": outdir, "manifest": manifest, "docs": docs, "hooked": hooked,
            "text": {n: (outdir / s["synthesizedStackPath"]).read_text() for n, s in manifest["stacks"].items()}}


def resources(doc: dict, rtype: str) -> list[dict]:
    return list(doc.get("resource", {}).get(rtype, {}).values())


def test_three_stacks_per_cloud_environment_none_for_local(synthesized) -> None:
    stacks = synthesized["manifest"]["stacks"]
    expected = {f"{e}-{k}" for e in (*CLOUD, LOCAL_BACKEND_ENV) for k in ("platform", "workspace", "serving")}
    assert set(stacks) == expected
    assert not any(n.startswith("local-") for n in stacks)
    for env in CLOUD:
        assert stacks[f"{env}-workspace"]["dependencies"] == [f"{env}-platform"]
        assert stacks[f"{env}-serving"]["dependencies"] == [f"{env}-platform"]  # serving: issue 5
    assert sorted(synthesized["hooked"]) == sorted((n, n.rsplit("-", 1)[0]) for n in expected)


@pytest.mark.parametrize("env", CLOUD)
def test_azurerm_backend_one_state_per_stack_entra_auth(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    keys = set()
    for kind in ("platform", "workspace"):
        backend = synthesized["docs"][f"{env}-{kind}"]["terraform"]["backend"]["azurerm"]
        assert backend["storage_account_name"] == cfg.backend.storage_account_name
        assert backend["resource_group_name"] == cfg.backend.resource_group_name
        assert backend["use_azuread_auth"] is True
        assert not {"access_key", "sas_token", "client_secret"} & set(backend)
        assert backend["key"].startswith(f"{env}/") and kind in backend["key"]
        keys.add(backend["key"])
    assert len(keys) == 2


def test_local_backend_where_the_environment_says_so(synthesized) -> None:
    for kind in ("platform", "workspace"):
        backend = synthesized["docs"][f"{LOCAL_BACKEND_ENV}-{kind}"]["terraform"]["backend"]
        assert backend == {"local": {"path": f"state/{LOCAL_BACKEND_ENV}-{kind}.tfstate"}}


@pytest.mark.parametrize("env", CLOUD)
def test_workspace_provider_and_secret_scope_reference_the_platform_stack(synthesized, env) -> None:
    platform, workspace = synthesized["docs"][f"{env}-platform"], synthesized["docs"][f"{env}-workspace"]
    remote = workspace["data"]["terraform_remote_state"]
    assert len(remote) == 1
    (remote_name, remote_state), = remote.items()
    assert remote_state["backend"] == "azurerm"
    assert remote_state["config"]["key"] == platform["terraform"]["backend"]["azurerm"]["key"]

    def platform_value(expression: str) -> str:
        """Follow ${data.terraform_remote_state.X.outputs.O} to the platform output O's value."""
        match = re.search(rf"data\.terraform_remote_state\.{re.escape(remote_name)}\.outputs\.([\w-]+)", expression)
        assert match, f"{expression!r} is not a reference into the platform stack"
        return platform["output"][match.group(1)]["value"]

    provider = workspace["provider"]["databricks"][0]
    assert provider["host"].startswith("https://")
    assert platform_value(provider["host"]).endswith(".workspace_url}")
    assert platform_value(provider["azure_workspace_resource_id"]).startswith("${azurerm_databricks_workspace.")
    assert not {"token", "password", "client_secret", "azure_client_secret"} & set(provider)
    scope, = resources(workspace, "databricks_secret_scope")
    assert platform_value(scope["keyvault_metadata"]["resource_id"]).startswith("${azurerm_key_vault.")
    assert platform_value(scope["keyvault_metadata"]["dns_name"]).endswith(".vault_uri}")


@pytest.mark.parametrize("env", CLOUD)
def test_platform_outputs_for_the_other_tools(synthesized, env) -> None:
    outputs = synthesized["docs"][f"{env}-platform"]["output"]
    for name in ("databricks_workspace_url", "databricks_workspace_id", "key_vault_uri",
                 "container_registry_login_server", "aks_workload_client_id"):
        assert name in outputs and not outputs[name].get("sensitive")
    assert "job_ids" in synthesized["docs"][f"{env}-workspace"]["output"]


def _resource_class(rtype: str):
    package = "cdktn_provider_azurerm" if rtype.startswith("azurerm_") else "cdktn_provider_databricks"
    module = importlib.import_module(f"{package}.{rtype.split('_', 1)[1]}")
    for value in vars(module).values():
        if inspect.isclass(value) and getattr(value, "TF_RESOURCE_TYPE", None) == rtype:
            return value
    raise AssertionError(f"no typed provider class for {rtype}")


def test_every_attribute_is_in_the_typed_provider_binding(synthesized) -> None:
    """Nothing reached the JSON around the typed classes (raw overrides would show up here)."""
    meta = {"//", "depends_on", "count", "for_each", "lifecycle", "provider", "provisioner", "connection"}
    for env in CLOUD:
        for kind in ("platform", "workspace"):
            doc = synthesized["docs"][f"{env}-{kind}"]
            for rtype, items in doc["resource"].items():
                params = set(inspect.signature(_resource_class(rtype).__init__).parameters)
                for body in items.values():
                    unknown = set(body) - meta - params
                    assert not unknown, f"{rtype}: {unknown} are not arguments of the binding"


@pytest.mark.parametrize("env", CLOUD)
def test_every_taggable_azure_resource_carries_the_environment_tags(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    expected = tags_for(cfg.tags, env)
    assert {"owner", "cost-center", "environment", "managed-by"} <= set(expected)
    doc = synthesized["docs"][f"{env}-platform"]
    taggable = 0
    for rtype, items in doc["resource"].items():
        if "tags" in inspect.signature(_resource_class(rtype).__init__).parameters:
            for address, body in items.items():
                assert body.get("tags") == expected, f"{rtype}.{address} tags"
                taggable += 1
    assert taggable >= 8
    aks, = resources(doc, "azurerm_kubernetes_cluster")
    assert aks["default_node_pool"]["tags"] == expected
    workspace = synthesized["docs"][f"{env}-workspace"]
    assert all(p["custom_tags"] == expected for p in resources(workspace, "databricks_instance_pool"))
    assert all(j["tags"] == expected for j in resources(workspace, "databricks_job"))
    for experiment in resources(workspace, "databricks_mlflow_experiment"):
        assert {t["key"]: t["value"] for t in experiment["tags"]} == expected


def _optional_names(cfg) -> set[str]:
    """Names of issue 13's systems where the environment turns them on."""
    names, private, out = cfg.names, cfg.network.private, set()
    adf = cfg.data_factory
    if adf.enabled:
        out |= {names.data_factory, names.data_factory_databricks_identity, names.adf_credential,
                names.adf_linked_service_sql, names.adf_linked_service_raw, names.adf_linked_service_databricks,
                *(f(t.name) for t in adf.source.tables for f in (names.adf_dataset_sql, names.adf_dataset_raw)),
                *(f(j) for j in adf.jobs for f in (names.adf_pipeline, names.adf_trigger))}
        if private:
            out |= {names.adf_integration_runtime, names.private_endpoint("adf"),
                    *(names.adf_managed_private_endpoint(t) for t in ("sql", "st-dfs", "dbw"))}
    if cfg.ml_workspace.enabled:
        out |= {names.ml_workspace, names.ml_storage_account, names.application_insights,
                names.application_insights_secret}
        if private:
            out |= {names.private_endpoint("mlw"), names.private_endpoint("stml-blob")}
    if cfg.postgres.enabled:  # the database's name is the export's setting (workloads.export.database)
        out |= {names.postgresql_server, names.export_access_connector, names.export_service_credential,
                cfg.workloads.export.database}
        if private:
            out |= {names.private_endpoint("psql")}
    return out


def _expected_names(names: Names, private_network: bool, models: tuple[str, ...] = ()) -> set[str]:
    version = workloads_version
    network = {
        names.virtual_network, names.network_security_group("databricks"), names.network_security_group("endpoints"),
        names.subnet("dbw-host"),
        names.subnet("dbw-container"), names.subnet("endpoints"), names.subnet("aks"), names.network_security_group("aks"), *PRIVATE_DNS_ZONES.values(),
        *(names.private_endpoint(t) for t in ("dbw", "kv", "st-dfs", "st-blob", "cr", "evhns")),
    } if private_network else set()
    return network | {
        names.resource_group, names.storage_account, names.key_vault, names.container_registry,
        names.kubernetes_cluster, names.eventhub_namespace, names.eventhub_inference_logs,
        names.consumer_group_monitoring, names.databricks_workspace, names.log_analytics_workspace,
        names.managed_identity("aks-workload"),
        names.federated_credential("aks-workload"), *names.CONTAINERS, names.cluster_policy, names.secret_scope,
        names.settings_file, names.wheel_path(version),
        *(names.instance_pool(p) for p in ("default",)),
        *(names.job(j) for j in graph.JOBS), *(names.experiment(j) for j in graph.JOBS),
        *models,  # registered model names: the workloads' settings, what the jobs register under
        # Unity Catalog data access: the connector, its storage credential, a location per job container.
        names.databricks_access_connector, names.storage_credential,
        *(names.external_location(c) for c in JOB_CONTAINER_ACCESS),
    }


@pytest.mark.parametrize("env", CLOUD)
def test_every_physical_name_comes_from_the_naming_module(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    names = cfg.names
    ws = cfg.workloads
    # Unity Catalog names come from the environment file (workloads.tracking.registry), checked at load.
    registry = ws.tracking.registry
    expected = _expected_names(names, cfg.network.private,
                               (ws.forecast.registered_model, ws.classifier.registered_model, registry.schema_,
                                *([registry.catalog] if cfg.databricks.create_catalog else []))) | _optional_names(cfg)
    seen = set()
    for kind in ("platform", "workspace"):
        for rtype, items in synthesized["docs"][f"{env}-{kind}"]["resource"].items():
            if rtype == "azurerm_postgresql_flexible_server_configuration":
                continue  # its name is a server parameter (require_secure_transport), not a resource's
            for body in items.values():
                for attr in ("name", "instance_pool_name", "path"):
                    if isinstance(body.get(attr), str) and "${" not in body[attr]:
                        assert body[attr] in expected, f"{rtype}.{attr} = {body[attr]!r} is not from envconfig.naming"
                        seen.add(body[attr])
    assert seen == expected
    platform = synthesized["docs"][f"{env}-platform"]
    for rtype, rule in (("azurerm_storage_account", "storage_account"), ("azurerm_key_vault", "key_vault"),
                        ("azurerm_container_registry", "container_registry")):
        RULES[rule].check(resources(platform, rtype)[0]["name"])
    assert resources(platform, "azurerm_databricks_workspace")[0]["managed_resource_group_name"] == \
        names.databricks_managed_resource_group


@pytest.mark.parametrize("env", CLOUD)
def test_key_vault_access_policies_follow_the_grants(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    policies = resources(synthesized["docs"][f"{env}-platform"], "azurerm_key_vault_access_policy")
    # + the Azure ML workspace's identity where it is on: its connections' secrets, nothing else
    aml = [p for p in policies if p["object_id"].startswith("${azurerm_machine_learning_workspace.")]
    assert len(aml) == cfg.ml_workspace.enabled
    assert all(p["secret_permissions"] == ["Get", "List", "Set", "Delete"] and not p.get("key_permissions")
               for p in aml)
    policies = [p for p in policies if p not in aml]
    assert len(policies) == len(cfg.key_vault.grants)
    by_object = {p["object_id"]: p for p in policies}
    assert by_object[cfg.principals.deployer]["secret_permissions"] == ["Get", "List", "Set", "Delete", "Recover"]
    assert by_object[cfg.principals.databricks]["secret_permissions"] == ["Get", "List"]
    workload = [p for p in policies if p["object_id"].startswith("${azurerm_user_assigned_identity.")]
    assert len(workload) == 1 and workload[0]["secret_permissions"] == ["Get"]
    assert not any("Purge" in p.get("secret_permissions", []) for p in policies)
    assert all(p["tenant_id"] == cfg.tenant_id for p in policies)


def _scoring_identity(doc: dict, cfg) -> str:
    """The scoring service's user-assigned identity (the factory has one of its own too)."""
    return next(a for a, i in doc["resource"]["azurerm_user_assigned_identity"].items()
                if i["name"] == cfg.names.scoring_principal)


@pytest.mark.parametrize("env", CLOUD)
def test_scoring_identity_gets_exactly_what_scoring_needs(synthesized, env) -> None:
    doc = synthesized["docs"][f"{env}-platform"]
    cfg = synthesized["configs"][env]
    identity = _scoring_identity(doc, cfg)
    grants = {}
    for ra in resources(doc, "azurerm_role_assignment"):
        pid = ra["principal_id"]
        who = ("scoring" if identity in pid else "kubelet" if "kubelet_identity" in pid
               else "capture" if pid.startswith("${azurerm_eventhub_namespace.")
               else "jobs" if pid.startswith("${azurerm_databricks_access_connector.")
               else "factory" if pid.startswith("${azurerm_data_factory.")
               else "ml-workspace" if pid.startswith("${azurerm_machine_learning_workspace.")
               else "deployer" if pid == synthesized["configs"][env].principals.deployer
               else "cluster" if ".identity[0].principal_id" in pid or ".identity.0.principal_id" in pid else pid)
        target = ra["scope"].split(".")[0].removeprefix("${")
        grants.setdefault(who, set()).add((ra["role_definition_name"], target))
    assert grants == {
        # The Databricks jobs (Unity Catalog, through the access connector): one role per container,
        # the exact roles asserted per container in test_access_connector_roles_per_container.
        "jobs": {("Storage Blob Data Reader", "azurerm_storage_container"),
                 ("Storage Blob Data Contributor", "azurerm_storage_container")},
        "scoring": {("AcrPull", "azurerm_container_registry"), ("Storage Blob Data Reader", "azurerm_storage_container"),
                    ("Azure Event Hubs Data Sender", "azurerm_eventhub"),
                    # issue 13: traces to Application Insights, whose local authentication is off
                    *([("Monitoring Metrics Publisher", "azurerm_application_insights")]
                      if cfg.ml_workspace.enabled else [])},
        "kubelet": {("AcrPull", "azurerm_container_registry")},
        # Event Hubs Capture writes the inference log into its container as the namespace's identity.
        "capture": {("Storage Blob Data Contributor", "azurerm_storage_container")},
        # VNet-integrated clusters (private network) also manage their own node subnet, nothing else.
        **({"cluster": {("Network Contributor", "azurerm_subnet")}} if synthesized["configs"][env].network.private else {}),
        # issue 13: the factory writes raw only; Azure ML uses its own account as itself; the deployer
        # registers models (mlkit promote); the scoring service sends telemetry with Entra ID.
        **({"factory": {("Storage Blob Data Contributor", "azurerm_storage_container")}}
           if synthesized["configs"][env].data_factory.enabled else {}),
        **({"ml-workspace": {("Storage Blob Data Contributor", "azurerm_storage_account"),
                             ("Storage File Data Privileged Contributor", "azurerm_storage_account")},
            "deployer": {("AzureML Data Scientist", "azurerm_machine_learning_workspace")}}
           if synthesized["configs"][env].ml_workspace.enabled else {}),
    }
    models = [a for a, c in doc["resource"]["azurerm_storage_container"].items() if c["name"] == "models"]
    reader = [r for r in resources(doc, "azurerm_role_assignment") if r["role_definition_name"] == "Storage Blob Data Reader"
              and identity in r["principal_id"]]
    assert len(reader) == 1 and models[0] in reader[0]["scope"]


@pytest.mark.parametrize("env", CLOUD)
def test_scoring_identity_reads_only_the_served_model_in_the_registry(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    platform, workspace = synthesized["docs"][f"{env}-platform"], synthesized["docs"][f"{env}-workspace"]
    sp_address, sp = next((a, p) for a, p in workspace["resource"]["databricks_service_principal"].items()
                          if p["display_name"] == cfg.names.scoring_principal)
    # application_id is the platform's scoring identity client id, read from the platform's state.
    output = re.fullmatch(r"\$\{data\.terraform_remote_state\.[\w-]+\.outputs\.([\w-]+)\}", sp["application_id"])
    identity = _scoring_identity(platform, cfg)
    assert platform["output"][output.group(1)]["value"] == f"${{azurerm_user_assigned_identity.{identity}.client_id}}"
    assert platform["resource"]["azurerm_user_assigned_identity"][identity]["name"] == cfg.names.scoring_principal
    assert sp["display_name"] == cfg.names.scoring_principal
    assert (sp["allow_cluster_create"], sp["allow_instance_pool_create"], sp["databricks_sql_access"]) == (False,) * 3
    assert not {"workspace_access", "force", "external_id"} & set(sp)
    # Unity Catalog models (MLflow's databricks-uc registry), never the legacy workspace registry.
    assert "databricks_mlflow_model" not in workspace["resource"]
    # The only Databricks ACLs: Data Factory's identity may run the jobs it orchestrates (issue 13).
    assert all([a["permission_level"] for a in p["access_control"]] == ["CAN_MANAGE_RUN"] and "job_id" in p
               for p in resources(workspace, "databricks_permissions"))
    assert len(resources(workspace, "databricks_permissions")) == \
        (len(cfg.data_factory.jobs) if cfg.data_factory.enabled else 0)
    registry = cfg.workloads.tracking.registry
    models = {f"{registry.catalog}.{registry.schema_}.{m['name']}": a
              for a, m in workspace["resource"]["databricks_registered_model"].items()}
    assert set(models) == set(cfg.registered_models.values())
    assert all(m["owner"] == cfg.principals.deployer_application_id
               for m in resources(workspace, "databricks_registered_model"))
    model_grants = [g for g in resources(workspace, "databricks_grants") if "model" in g]
    # EXECUTE on each served model, and on nothing else (workloads.serving.models).
    assert sorted((g["model"], str(g["grant"])) for g in model_grants) == sorted(
        (f"${{databricks_registered_model.{models[full]}.id}}",
         str([{"principal": f"${{databricks_service_principal.{sp_address}.application_id}}", "privileges": ["EXECUTE"]}]))
        for full in cfg.served_models.values())
    # The jobs run as the deploying principal (the models' owner: it registers versions, moves aliases).
    assert all(j["run_as"] == {"service_principal_name": cfg.principals.deployer_application_id}
               for j in resources(workspace, "databricks_job"))


def _api_job(body: dict) -> dict:
    """Terraform's databricks_job fields -> the Jobs API's JobSettings fields."""
    def task(t: dict) -> dict:
        out = {k: v for k, v in t.items() if k != "library"}
        if "library" in t:
            out["libraries"] = t["library"]
        return out

    renames = {"task": "tasks", "job_cluster": "job_clusters", "parameter": "parameters"}
    out = {}
    for key, value in body.items():
        if key in ("//", "depends_on"):  # provenance and Terraform's own ordering: not job settings
            continue
        key = renames.get(key, key)
        out[key] = [task(t) for t in value] if key == "tasks" else value
    return out


@pytest.mark.parametrize("env", CLOUD)
def test_jobs_parse_with_the_sdk_and_equal_the_graph(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    names = cfg.names
    jobs = {j["name"]: j for j in resources(synthesized["docs"][f"{env}-workspace"], "databricks_job")}
    assert set(jobs) == {names.job(j) for j in graph.JOBS}
    for job in graph.JOBS.values():
        mapped = _api_job(jobs[names.job(job.name)])
        settings = JobSettings.from_dict(mapped)
        # The SDK keeps every field we send: nothing in the synthesized job is unknown to the API.
        assert settings.as_dict() == mapped
        assert {t.task_key: sorted(d.task_key for d in t.depends_on or []) for t in settings.tasks} == \
            {t.key: sorted(t.depends_on) for t in job.tasks}
        for t in settings.tasks:
            task = job.task(t.task_key)
            assert t.python_wheel_task.package_name == graph.PACKAGE_NAME
            assert t.python_wheel_task.entry_point == task.entry_point
            assert t.python_wheel_task.parameters == ["--env", env, "--settings", "/Workspace" + names.settings_file,
                                                      "--run-id", "{{job.run_id}}", *task.parameters]
            assert [lib.whl for lib in t.libraries] == ["/Workspace" + names.wheel_path(workloads_version)]
            assert t.job_cluster_key == settings.job_clusters[0].job_cluster_key
            assert t.max_retries == cfg.jobs.max_retries
        cluster = settings.job_clusters[0].new_cluster
        assert cluster.spark_version == cfg.databricks.spark_version
        assert cluster.spark_conf == {"spark.sql.adaptive.enabled": "false"}
        assert (cluster.autoscale.min_workers, cluster.autoscale.max_workers) == \
            (cfg.databricks.job_cluster.min_workers, cfg.databricks.job_cluster.max_workers)
        assert cluster.policy_id.startswith("${databricks_cluster_policy.")
        assert cluster.instance_pool_id == cluster.driver_instance_pool_id
        # the graph's job parameters, with their defaults (an orchestrator sets them per run)
        assert [(p.name, p.default) for p in settings.parameters or []] == [(p.name, p.default) for p in job.parameters]
        schedule = cfg.jobs.schedules[job.schedule_key]
        if cfg.data_factory.enabled and job.name in cfg.data_factory.jobs:
            assert settings.schedule is None  # one scheduler: Data Factory's trigger (test_stacks_orchestration)
        else:
            assert settings.schedule.quartz_cron_expression == schedule.quartz_cron
            assert settings.schedule.timezone_id == schedule.timezone
            assert settings.schedule.pause_status.value == ("PAUSED" if schedule.paused else "UNPAUSED")
        assert settings.email_notifications.on_failure == cfg.databricks.notification_emails
        assert settings.timeout_seconds == cfg.jobs.timeout_seconds
        assert settings.max_concurrent_runs == cfg.jobs.max_concurrent_runs


def test_dev_schedules_are_paused_and_prod_are_not(synthesized) -> None:
    for env, status in (("dev", "PAUSED"), ("prod", "UNPAUSED")):
        assert {j["schedule"]["pause_status"] for j in resources(synthesized["docs"][f"{env}-workspace"],
                                                                 "databricks_job") if "schedule" in j} == {status}


@pytest.mark.parametrize("env", CLOUD)
def test_settings_file_holds_the_resolved_workload_settings(synthesized, env) -> None:
    names = synthesized["configs"][env].names
    files = {f["path"]: f for f in resources(synthesized["docs"][f"{env}-workspace"], "databricks_workspace_file")}
    settings = json.loads(base64.b64decode(files[names.settings_file]["content_base64"]))
    WorkloadSettings.model_validate(settings)
    assert settings["forecast"]["source"]["path"] == f"abfss://raw@{names.storage_account}.dfs.core.windows.net/sales/"
    wheel = files[names.wheel_path(workloads_version)]
    assert wheel["source"] == f"../../../dist/{wheel_filename(workloads_version)}"


def test_no_absolute_local_paths_or_secrets_in_the_output(synthesized) -> None:
    outdir = str(synthesized["outdir"].parent)
    for name, text in synthesized["text"].items():
        assert outdir not in text and str(REPO) not in text, f"{name} holds a machine-specific path"
        secret_keys = re.findall(r'"(\w*(?:client_secret|access_key|sas_token|password|token))"\s*:', text)
        # A Kubernetes switch (false: no API token in the scoring pod), not a secret.
        secret_keys = [k for k in secret_keys if k != "automount_service_account_token"]
        assert not secret_keys, f"{name} sets {secret_keys}"
        assert not re.search(r"dapi[0-9a-f]{32}", text), f"{name} holds a Databricks personal access token"


def test_cluster_policy_fixes_pool_runtime_and_caps_workers(synthesized) -> None:
    for env in CLOUD:
        cfg = synthesized["configs"][env]
        doc = synthesized["docs"][f"{env}-workspace"]
        policy, = resources(doc, "databricks_cluster_policy")
        definition = json.loads(policy["definition"])
        pool_address = next(iter(doc["resource"]["databricks_instance_pool"]))
        assert definition["instance_pool_id"]["value"] == f"${{databricks_instance_pool.{pool_address}.id}}"
        assert definition["spark_version"]["value"] == cfg.databricks.spark_version
        assert definition["autoscale.max_workers"]["maxValue"] == cfg.databricks.cluster_policy.max_workers
        assert definition["node_type_id"]["values"] == cfg.databricks.cluster_policy.allowed_node_types


# ---------------------------------------------------------------- private network (staging, prod)


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_private_workspace_is_vnet_injected_with_private_endpoints(synthesized, env) -> None:
    doc = synthesized["docs"][f"{env}-platform"]
    ws, = resources(doc, "azurerm_databricks_workspace")
    assert ws["public_network_access_enabled"] is False
    assert ws["network_security_group_rules_required"] == "NoAzureDatabricksRules"
    params = ws["custom_parameters"]
    assert params["virtual_network_id"].startswith("${azurerm_virtual_network.")
    assert params["public_subnet_name"].startswith("${azurerm_subnet.")
    assert params["private_subnet_network_security_group_association_id"].startswith(
        "${azurerm_subnet_network_security_group_association.")
    delegated = [s for s in resources(doc, "azurerm_subnet") if s.get("delegation")]
    assert len(delegated) == 2
    assert all(s["delegation"][0]["service_delegation"]["name"] == "Microsoft.Databricks/workspaces" for s in delegated)
    endpoints = {e["private_service_connection"]["subresource_names"][0]: e for e in resources(doc, "azurerm_private_endpoint")}
    cfg = synthesized["configs"][env]
    assert set(endpoints) == {"databricks_ui_api", "vault", "dfs", "blob", "registry", "namespace",
                              *(["dataFactory"] if cfg.data_factory.enabled else []),
                              *(["amlworkspace"] if cfg.ml_workspace.enabled else []),
                              *(["postgresqlServer"] if cfg.postgres.enabled else [])}
    zones = {z["name"] for z in resources(doc, "azurerm_private_dns_zone")}
    assert zones == set(PRIVATE_DNS_ZONES.values())
    assert endpoints["vault"]["private_service_connection"]["private_connection_resource_id"].startswith(
        "${azurerm_key_vault.")
    # AKS nodes sit in the VNet (the registry's public access is off there) and the cluster
    # identity may manage that subnet only.
    aks, = resources(doc, "azurerm_kubernetes_cluster")
    aks_subnet = aks["default_node_pool"]["vnet_subnet_id"]
    assert aks_subnet.startswith("${azurerm_subnet.network_subnet-aks")
    network_roles = [r for r in resources(doc, "azurerm_role_assignment") if r["role_definition_name"] == "Network Contributor"]
    assert [r["scope"] for r in network_roles] == [aks_subnet]


def test_dev_has_no_private_network(synthesized) -> None:
    doc = synthesized["docs"]["dev-platform"]
    assert not resources(doc, "azurerm_virtual_network") and not resources(doc, "azurerm_private_endpoint")
    ws, = resources(doc, "azurerm_databricks_workspace")
    assert ws["public_network_access_enabled"] is True and "virtual_network_id" not in ws["custom_parameters"]


def test_synth_refusal_names_every_stack_of_the_refused_environment(tmp_path) -> None:
    """The gate removes all of a refused environment's stacks; the table and the message say which."""
    from ops_helpers import environments_with_idling_pools
    from typer.testing import CliRunner

    from mlkit.cli import app

    # Pools that idle for 500 minutes break MLK-DB-001: staging is refused.
    envs = environments_with_idling_pools(tmp_path / "environments")
    out = tmp_path / "cdktf.out"
    res = CliRunner().invoke(app, ["synth", "--env", "staging", "--environments", str(envs), "--out", str(out)],
                             env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert res.exit_code == 1, res.output
    assert "not written: staging-platform, staging-serving, staging-workspace" in res.output
    assert "0 stack(s)" in res.output and "Traceback" not in res.output
    assert not list((out / "stacks").glob("staging-*"))


# ------------------------------------------------------------------ the BI database (issue 13, part 3)


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_bi_database_entra_only_tls_private_endpoint(synthesized, env) -> None:
    cfg, doc = synthesized["configs"][env], synthesized["docs"][f"{env}-platform"]
    (server,) = resources(doc, "azurerm_postgresql_flexible_server")
    assert server["name"] == cfg.names.postgresql_server
    assert server["authentication"] == {"active_directory_auth_enabled": True, "password_auth_enabled": False,
                                        "tenant_id": cfg.tenant_id}
    assert not {"administrator_login", "administrator_password", "administrator_password_wo"} & set(server)
    assert server["public_network_access_enabled"] is False  # staging and prod are private
    settings = {c["name"]: c["value"] for c in resources(doc, "azurerm_postgresql_flexible_server_configuration")}
    assert settings == {"require_secure_transport": "on", "ssl_min_protocol_version": "TLSv1.2"}
    (admin,) = resources(doc, "azurerm_postgresql_flexible_server_active_directory_administrator")
    assert (admin["principal_type"], admin["principal_name"]) == ("Group", cfg.postgres.admin_group)
    assert admin["object_id"] == cfg.principals.groups[cfg.postgres.admin_group]
    (pe,) = [p for p in resources(doc, "azurerm_private_endpoint")
             if p["private_service_connection"]["subresource_names"] == ["postgresqlServer"]]
    assert "azurerm_postgresql_flexible_server" in pe["private_service_connection"]["private_connection_resource_id"]
    zones = {z["name"] for z in resources(doc, "azurerm_private_dns_zone")}
    assert PRIVATE_DNS_ZONES["postgresqlServer"] == "privatelink.postgres.database.azure.com" and \
        "privatelink.postgres.database.azure.com" in zones
    sql_text = doc["output"]["postgres_setup_sql"]["value"]
    role = cfg.names.export_access_connector
    assert f"pgaadauth_create_principal('{role}', false, false)" in sql_text
    assert f'GRANT SELECT, INSERT, UPDATE, DELETE ON "predictions"."forecast_predictions", ' \
           f'"predictions"."forecast_predictions_staging" TO "{role}";' in sql_text
    assert "CREATE ON SCHEMA" not in sql_text and not re.search(r"password\s+'", sql_text, re.I)  # no role password


def test_dev_has_no_bi_database(synthesized) -> None:
    assert not resources(synthesized["docs"]["dev-platform"], "azurerm_postgresql_flexible_server")
    assert not resources(synthesized["docs"]["dev-workspace"], "databricks_credential")


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_export_task_connects_with_its_identity_token_never_a_password(synthesized, env) -> None:
    cfg, doc = synthesized["configs"][env], synthesized["docs"][f"{env}-workspace"]
    (file_,) = [f for f in resources(doc, "databricks_workspace_file") if f["path"] == cfg.names.settings_file]
    export = json.loads(base64.b64decode(file_["content_base64"]))["export"]
    assert export["enabled"] and export["host"] == cfg.names.postgresql_fqdn
    assert (export["auth"], export["driver"], export["sslmode"]) == ("entra", "spark_jdbc", "verify-full")
    assert export["user"] == cfg.names.export_access_connector and export["password_file"] is None
    assert export["credential"] == cfg.names.export_service_credential
    (cred,) = resources(doc, "databricks_credential")
    assert (cred["name"], cred["purpose"]) == (cfg.names.export_service_credential, "SERVICE")
    assert "export-connector" in cred["azure_managed_identity"]["access_connector_id"]
    grants = [g for g in resources(doc, "databricks_grants") if g.get("credential")]
    assert [gr for g in grants for gr in g["grant"]] == [
        {"principal": cfg.principals.deployer_application_id, "privileges": ["ACCESS"]}]
    # the job that exports cannot start before its principal may use the credential; no other job waits on it
    (grant_id,) = [k for k, g in doc["resource"]["databricks_grants"].items() if g.get("credential")]
    waits = {j["name"]: f"databricks_grants.{grant_id}" in j.get("depends_on", [])
             for j in resources(doc, "databricks_job")}
    assert waits == {cfg.names.job(name): any(t.entry_point == "mlkit-export" for t in job.tasks)
                     for name, job in graph.JOBS.items()}
    text = synthesized["text"][f"{env}-workspace"] + synthesized["text"][f"{env}-platform"]
    assert "administrator_password" not in text and "password_auth_enabled\": true" not in text
# ---- issue 13: Data Factory orchestration, Azure ML workspace + Application Insights ----------


def _untoken(text: str) -> str:
    """Terraform interpolations in a JSON-valued attribute, as values (the job id is known at apply)."""
    return re.sub(r"\$\{[^}]*\}", "resolved-at-apply", text)


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_synthesized_pipeline_is_the_job_graphs_refereed_by_the_sdk(synthesized, env) -> None:
    import azure.mgmt.datafactory.models as adf
    from adf_referee import strict, typed

    cfg = synthesized["configs"][env]
    names, workspace = cfg.names, synthesized["docs"][f"{env}-workspace"]
    pipelines = {p["name"]: p for p in resources(workspace, "azurerm_data_factory_pipeline")}
    assert set(pipelines) == {names.adf_pipeline(j) for j in cfg.data_factory.jobs}
    for job_name in cfg.data_factory.jobs:
        body = pipelines[names.adf_pipeline(job_name)]
        job = graph.JOBS[job_name]
        doc = {"properties": {"activities": json.loads(_untoken(body["activities_json"])),
                              "parameters": {k: {"type": "String", "defaultValue": v}
                                             for k, v in body["parameters"].items()}}}
        acts = [typed(adf.Activity, a) for a in strict(adf.PipelineResource, doc).properties.activities]
        tables = cfg.data_factory.source.tables
        assert [a.name for a in acts] == [*(f"copy_{t.name.replace('.', '_')}" for t in tables), f"run_{job_name}",
                                          f"fail_{job_name}"]
        run = acts[len(tables)]
        assert type(run).__name__ == "DatabricksJobActivity"
        # the job it runs is this stack's Databricks job, with the graph's parameters and tasks
        job_address = next(a for a, j in workspace["resource"]["databricks_job"].items() if j["name"] == names.job(job_name))
        assert json.loads(body["activities_json"])[len(tables)]["typeProperties"]["jobId"] == \
            f"${{databricks_job.{job_address}.id}}"
        assert set(run.type_properties.job_parameters) == {p.name for p in job.parameters}
        raw_root = names.abfss_url("raw").rstrip("/")
        folder = cfg.workloads.forecast.source.path.strip("/")
        assert run.type_properties.job_parameters["raw_path"]["value"].startswith(
            f"@concat('{raw_root}/{folder}/load_date='")
        assert run.user_properties[0].value == " -> ".join(t.key for t in job.topological_order())
        assert body["concurrency"] == 1


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_trigger_is_the_jobs_own_schedule_and_the_job_has_none(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    workspace = synthesized["docs"][f"{env}-workspace"]
    trigger, = resources(workspace, "azurerm_data_factory_trigger_schedule")
    schedule = cfg.jobs.schedules["forecast"]
    assert schedule.quartz_cron == "0 0 1 ? * SUN" and schedule.timezone == "Europe/Amsterdam"  # reference 000
    assert (trigger["frequency"], trigger["interval"], trigger["time_zone"], trigger["activated"]) == \
        ("Week", 1, "W. Europe Standard Time", True)
    assert trigger["schedule"] == {"days_of_week": ["Sunday"], "hours": [1], "minutes": [0]}
    jobs = {j["name"]: j for j in resources(workspace, "databricks_job")}
    assert "schedule" not in jobs[cfg.names.job("forecast")]
    assert "schedule" in jobs[cfg.names.job("classifier")]  # not orchestrated: keeps its own


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_factory_is_private_and_every_linked_service_is_an_identity(synthesized, env) -> None:
    import azure.mgmt.datafactory.models as adf
    from adf_referee import strict, typed

    cfg = synthesized["configs"][env]
    platform, workspace = synthesized["docs"][f"{env}-platform"], synthesized["docs"][f"{env}-workspace"]
    factory, = resources(platform, "azurerm_data_factory")
    assert (factory["public_network_enabled"], factory["managed_virtual_network_enabled"]) == (False, True)
    assert factory["identity"]["type"] == "SystemAssigned, UserAssigned"
    sql, = resources(platform, "azurerm_data_factory_linked_service_azure_sql_database")
    lake, = resources(platform, "azurerm_data_factory_linked_service_data_lake_storage_gen2")
    assert sql["use_managed_identity"] is True and lake["use_managed_identity"] is True
    assert "Encrypt=True" in sql["connection_string"] and "Password" not in sql["connection_string"]
    assert f"Data Source={cfg.data_factory.source.host}" in sql["connection_string"]
    assert {sql["integration_runtime_name"], lake["integration_runtime_name"]} == {cfg.names.adf_integration_runtime}
    custom, = resources(workspace, "azurerm_data_factory_linked_custom_service")
    props = json.loads(_untoken(custom["type_properties_json"]))
    service = typed(adf.LinkedService, strict(adf.LinkedServiceResource, {"properties": {
        "type": custom["type"], "typeProperties": props}}).properties)
    assert service.type_properties.authentication == "MSI" and service.type_properties.access_token is None
    assert service.type_properties.credential.reference_name == cfg.names.adf_credential
    targets = {e["subresource_name"] for e in resources(platform, "azurerm_data_factory_managed_private_endpoint")}
    assert targets == {"sqlServer", "dfs", "databricks_ui_api"}
    parquet = resources(platform, "azurerm_data_factory_dataset_parquet")
    assert [p["azure_blob_fs_location"]["path"] for p in parquet] == \
        [f"@concat('{t.folder}/load_date=', dataset().load_date)" for t in cfg.data_factory.source.tables]
    assert "CREATE USER [" + cfg.names.data_factory + "] FROM EXTERNAL PROVIDER" in \
        platform["output"]["data_factory_sql_grants"]["value"]


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_ml_workspace_reuses_vault_and_registry_with_its_own_insights_and_storage(synthesized, env) -> None:
    cfg = synthesized["configs"][env]
    platform = synthesized["docs"][f"{env}-platform"]
    mlw, = resources(platform, "azurerm_machine_learning_workspace")
    assert mlw["key_vault_id"].startswith("${azurerm_key_vault.")
    assert mlw["container_registry_id"].startswith("${azurerm_container_registry.")
    assert mlw["application_insights_id"].startswith("${azurerm_application_insights.")
    accounts = {a["name"]: a for a in resources(platform, "azurerm_storage_account")}
    lake, own = accounts[cfg.names.storage_account], accounts[cfg.names.ml_storage_account]
    # Azure ML cannot use an account with a hierarchical namespace: its own, locked down like the lake
    assert lake["is_hns_enabled"] is True and own["is_hns_enabled"] is False
    assert (own["shared_access_key_enabled"], own["min_tls_version"], own["infrastructure_encryption_enabled"]) == \
        (False, "TLS1_2", True)
    assert (mlw["public_network_access_enabled"], mlw["storage_account_access_type"], mlw["high_business_impact"]) == \
        (False, "Identity", True)
    assert mlw["managed_network"]["isolation_mode"] == "AllowOnlyApprovedOutbound"
    appi, = resources(platform, "azurerm_application_insights")
    assert appi["workspace_id"].startswith("${azurerm_log_analytics_workspace.")
    assert appi["local_authentication_enabled"] is False and appi["internet_query_enabled"] is False
    secret, = resources(platform, "azurerm_key_vault_secret")
    assert secret["name"] == cfg.names.application_insights_secret
    assert secret["value"].startswith("${azurerm_application_insights.") and secret["value"].endswith(".connection_string}")
    assert platform["output"]["application_insights_secret_name"]["value"] == cfg.names.application_insights_secret
    assert synthesized["manifest"] and mlw["tags"] == tags_for(cfg.tags, env)


def test_dev_has_neither_factory_nor_ml_workspace(synthesized) -> None:
    for kind in ("platform", "workspace"):
        doc = synthesized["docs"][f"dev-{kind}"]
        assert not [t for t in doc["resource"] if t.startswith(("azurerm_data_factory", "azurerm_machine_learning",
                                                                 "azurerm_application_insights"))]
    assert all("schedule" in j for j in resources(synthesized["docs"]["dev-workspace"], "databricks_job"))
