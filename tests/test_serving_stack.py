"""`<env>-serving` synthesized through the App (cross-stack references resolved): the Kubernetes
objects of the scoring service, their hardening, sizing from settings, and that the identity and
the provider configuration carry no credentials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mlkit_workloads.serve.settings import KubernetesSizing, ServingSettings
from mlkit_workloads.settings import WorkloadSettings

from envconfig.loader import load_environment
from stacks.app import build_app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("cdktf.out")
    cfg = load_environment("dev")
    build_app({"dev": cfg}, str(out)).synth()

    def stack(name: str) -> dict:
        return json.loads((Path(out) / "stacks" / name / "cdk.tf.json").read_text())

    return cfg, stack("dev-serving"), stack("dev-platform")


def _one(doc: dict, rtype: str) -> dict:
    items = list(doc["resource"][rtype].values())
    assert len(items) == 1, f"expected one {rtype}, found {len(items)}"
    return items[0]


def _remote(ref: str) -> str:
    """The platform output name a cross-stack reference reads."""
    m = re.search(r"outputs\.([A-Za-z0-9_-]+)", ref)
    assert m, ref
    return m.group(1)


def test_every_kubernetes_object_is_there(synth):
    _, doc, _ = synth
    assert set(doc["resource"]) == {
        "kubernetes_namespace_v1", "kubernetes_service_account_v1", "kubernetes_config_map_v1",
        "kubernetes_deployment_v1", "kubernetes_service_v1", "kubernetes_horizontal_pod_autoscaler_v2",
        "kubernetes_pod_disruption_budget_v1", "kubernetes_network_policy_v1"}


def test_deployment_is_sized_probed_and_hardened(synth):
    cfg, doc, _ = synth
    k8s = ServingSettings().kubernetes  # dev sets no serving section: the defaults apply
    dep = _one(doc, "kubernetes_deployment_v1")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["container"]
    assert c["resources"] == {"requests": {"cpu": k8s.cpu_request, "memory": k8s.memory_request},
                              "limits": {"cpu": k8s.cpu_limit, "memory": k8s.memory_limit}}
    assert c["readiness_probe"]["http_get"]["path"] == "/readyz"
    assert c["liveness_probe"]["http_get"]["path"] == "/healthz"
    assert c["startup_probe"]["failure_threshold"] * c["startup_probe"]["period_seconds"] >= 120
    sc = c["security_context"]
    assert sc["read_only_root_filesystem"] is True and sc["allow_privilege_escalation"] is False
    assert sc["run_as_non_root"] is True and sc["capabilities"] == {"drop": ["ALL"]} and sc["privileged"] is False
    assert pod["automount_service_account_token"] is False
    assert pod["security_context"]["seccomp_profile"] == {"type": "RuntimeDefault"}
    assert dep["spec"]["strategy"]["rolling_update"] == {"max_surge": "1", "max_unavailable": "0"}
    assert dep["lifecycle"]["ignore_changes"] == ["spec[0].replicas"]  # the HPA owns the count
    assert "--host" in c["args"] and c["args"][c["args"].index("--env") + 1] == "dev"
    assert c["image_pull_policy"] == "Always" and c["image"].endswith("/mlkit-scoring@${var.scoring_image_digest}")
    assert _remote(c["image"]).endswith("login_server")
    env = {e["name"]: e.get("value") for e in c["env"]}
    # Models are in Unity Catalog: the registry is databricks-uc, the runs stay in the workspace.
    assert (env["MLFLOW_TRACKING_URI"], env["MLFLOW_REGISTRY_URI"]) == ("databricks", "databricks-uc")


def test_autoscaler_service_budget_and_network_policy(synth):
    _, doc, _ = synth
    k8s = ServingSettings().kubernetes
    hpa = _one(doc, "kubernetes_horizontal_pod_autoscaler_v2")["spec"]
    assert (hpa["min_replicas"], hpa["max_replicas"]) == (k8s.min_replicas, k8s.max_replicas)
    assert hpa["metric"][0]["resource"]["target"]["average_utilization"] == k8s.target_cpu_percent
    assert hpa["scale_target_ref"]["name"] == "mlkit-scoring"
    svc = _one(doc, "kubernetes_service_v1")["spec"]
    assert svc["type"] == "ClusterIP" and svc["port"][0]["target_port"] == "http"
    assert _one(doc, "kubernetes_pod_disruption_budget_v1")["spec"]["min_available"] == "1"
    pol = _one(doc, "kubernetes_network_policy_v1")["spec"]
    assert pol["policy_types"] == ["Ingress", "Egress"]
    assert [p["port"] for p in pol["ingress"][0]["ports"]] == ["8080"]
    assert {p["port"] for p in pol["egress"][0]["ports"]} == {"53", "443", "5671"}
    ns = _one(doc, "kubernetes_namespace_v1")["metadata"][0]
    assert ns["name"] == "mlkit" and ns["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_workload_identity_binding(synth):
    cfg, doc, platform = synth
    sa = _one(doc, "kubernetes_service_account_v1")
    assert sa["metadata"]["name"] == cfg.names.scoring_service_account
    assert sa["metadata"]["namespace"].startswith("${kubernetes_namespace_v1.")
    assert _remote(sa["metadata"]["annotations"]["azure.workload.identity/client-id"]).endswith("client_id")
    pod = _one(doc, "kubernetes_deployment_v1")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["service_account_name"] == cfg.names.scoring_service_account
    # The federated credential trusts exactly this service account.
    (fic,) = platform["resource"]["azurerm_federated_identity_credential"].values()
    assert fic["subject"] == f"system:serviceaccount:mlkit:{cfg.names.scoring_service_account}"


def test_the_identity_may_do_four_things_and_nothing_more(synth):
    _, _, platform = synth
    (identity_key,) = [k for k, v in platform["resource"]["azurerm_user_assigned_identity"].items()
                       if "aks-workload" in v["name"]]
    principal = f"${{azurerm_user_assigned_identity.{identity_key}.principal_id}}"
    roles = sorted((r["role_definition_name"], r["scope"].split(".")[0].removeprefix("${"))
                   for r in platform["resource"]["azurerm_role_assignment"].values() if r["principal_id"] == principal)
    assert roles == [("AcrPull", "azurerm_container_registry"),
                     ("Azure Event Hubs Data Sender", "azurerm_eventhub"),
                     ("Storage Blob Data Reader", "azurerm_storage_container")]
    policies = [p for p in platform["resource"].get("azurerm_key_vault_access_policy", {}).values()
                if p["object_id"] == principal]
    assert len(policies) == 1 and policies[0]["secret_permissions"] == ["Get"]
    assert not policies[0].get("key_permissions") and not policies[0].get("certificate_permissions")


def test_no_cluster_credentials_in_outputs_state_or_provider(synth):
    _, doc, platform = synth
    (provider,) = doc["provider"]["kubernetes"]
    assert set(provider) == {"host", "cluster_ca_certificate", "exec"}  # no token, client key or password
    assert provider["exec"][0]["command"] == "kubelogin"
    assert "kube_config[0].host" in provider["host"]
    dumped = json.dumps(platform.get("output", {})) + json.dumps(doc.get("output", {}))
    for secret in ("kube_config", "kube_admin_config", "client_key", "client_certificate", "password"):
        assert secret not in dumped, f"{secret} must not be a stack output"


def test_settings_reach_the_pod_and_parse(synth):
    cfg, doc, _ = synth
    cm = _one(doc, "kubernetes_config_map_v1")
    settings = json.loads(cm["data"]["settings.json"])
    assert WorkloadSettings.model_validate(settings).forecast.columns == cfg.workloads.forecast.columns
    assert settings["forecast"]["source"]["path"].startswith("abfss://")  # resolved, as the jobs get it
    env = {e["name"]: e["value"] for e in _one(doc, "kubernetes_deployment_v1")["spec"]["template"]["spec"]
           ["container"][0]["env"]}
    assert env["MLKIT_EVENTHUB_NAME"] == cfg.names.eventhub_inference_logs
    assert env["MLKIT_EVENTHUB_NAMESPACE"] == f"{cfg.names.eventhub_namespace}.servicebus.windows.net"
    assert _remote(env["MLKIT_KEY_VAULT_URI"]).endswith("vault_uri")
    assert env["DATABRICKS_HOST"].startswith("https://${") and "https://https" not in env["DATABRICKS_HOST"]
    assert not any(k.endswith(("TOKEN", "SECRET", "KEY", "PASSWORD")) for k in env)
    # Traces to Application Insights: the pod is told which Key Vault secret holds the connection
    # string (it reads it with its workload identity), never the connection string itself.
    assert cfg.workloads.serving.telemetry.traces == "azure_monitor"
    assert env["MLKIT_APPINSIGHTS_SECRET_NAME"] == cfg.names.application_insights_secret
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" not in env and "InstrumentationKey" not in json.dumps(doc)


def test_one_deployment_serves_every_served_model(synth):
    cfg, doc, _ = synth
    dep = _one(doc, "kubernetes_deployment_v1")  # one, for all of them (serving_stack.py says why)
    served = dep["metadata"]["annotations"]["mlkit/served-models"].split(",")
    assert served == list(cfg.served_models.values()) and len(served) == 2
    settings = json.loads(_one(doc, "kubernetes_config_map_v1")["data"]["settings.json"])
    assert settings["serving"]["models"] == ["forecast", "classifier"]


def test_sizing_validation_names_the_field():
    with pytest.raises(ValueError, match="min_replicas"):
        KubernetesSizing(min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError, match="memory_limit"):
        ServingSettings(lru_max_bytes=2**30, kubernetes=KubernetesSizing(memory_limit="1Gi"))
    with pytest.raises(ValueError, match="memory_request"):
        KubernetesSizing(memory_request="2Gi", memory_limit="1Gi")


def _with_serving(cfg, **serving):
    ws = cfg.workloads.model_copy(update={"serving": ServingSettings(**serving)})
    return cfg.model_copy(update={"workloads": ws})


def test_sizing_comes_from_the_environment_and_an_open_api_is_refused(tmp_path):
    from stacks.errors import StackInputError

    cfg = load_environment("dev")
    sized = _with_serving(cfg, kubernetes=KubernetesSizing(cpu_request="500m", memory_limit="2Gi", min_replicas=3,
                                                          max_replicas=9, target_cpu_percent=55))
    build_app({"dev": sized}, str(tmp_path / "a")).synth()
    doc = json.loads((tmp_path / "a" / "stacks" / "dev-serving" / "cdk.tf.json").read_text())
    (c,) = _one(doc, "kubernetes_deployment_v1")["spec"]["template"]["spec"]["container"]
    assert c["resources"]["requests"]["cpu"] == "500m" and c["resources"]["limits"]["memory"] == "2Gi"
    hpa = _one(doc, "kubernetes_horizontal_pod_autoscaler_v2")["spec"]
    assert (hpa["min_replicas"], hpa["max_replicas"]) == (3, 9)
    assert hpa["metric"][0]["resource"]["target"]["average_utilization"] == 55
    with pytest.raises(StackInputError, match=r"workloads\.serving\.auth\.mode"):
        build_app({"dev": _with_serving(cfg, auth={"mode": "none"})}, str(tmp_path / "b"))


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_scoring_identity_may_execute_exactly_the_served_models(tmp_path, env):
    """Every cloud environment: EXECUTE for the scoring principal on each model it serves and on no
    other; serving only the classifier drops the forecast's grant."""
    for models in (["forecast", "classifier"], ["classifier"]):
        base = load_environment(env)
        cfg = _with_serving(base, **{**base.workloads.serving.model_dump(exclude={"models"}), "models": models})
        out = tmp_path / "-".join(models)
        build_app({env: cfg}, str(out)).synth()
        ws = json.loads((out / "stacks" / f"{env}-workspace" / "cdk.tf.json").read_text())["resource"]
        by_address = {f"${{databricks_registered_model.{a}.id}}": m["name"]
                      for a, m in ws["databricks_registered_model"].items()}
        executable = sorted(by_address[g["model"]] for g in ws.get("databricks_grants", {}).values()
                            if "model" in g and any("EXECUTE" in x["privileges"] for x in g["grant"]))
        executable += sorted(by_address[g["model"]] for g in ws.get("databricks_grant", {}).values()
                             if "model" in g and "EXECUTE" in g["privileges"])
        served = sorted(getattr(cfg.workloads, job).registered_model for job in cfg.served_models)
        assert sorted(executable) == served, (env, models, executable)
        assert len(cfg.served_models) == len(models)


def test_prod_passes_checkov_image_digest_without_a_suppression(tmp_path) -> None:
    """CKV_K8S_43 (image by digest) run by checkov itself on prod's serving stack; no suppression exists."""
    import json
    import subprocess

    from envconfig.loader import load_environment as load

    checkov = REPO / ".venv-checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("no .venv-checkov (scripts/setup.sh creates it)")
    cfg = load("prod", REPO / "environments", env={})
    assert not [s for s in cfg.suppressions if s.rule == "CKV_K8S_43"]
    build_app({"prod": cfg}, str(tmp_path / "out")).synth()
    stack = tmp_path / "out" / "stacks" / "prod-serving" / "cdk.tf.json"
    p = subprocess.run([str(checkov), "-f", str(stack), "--framework", "terraform_json", "--skip-download",
                        "--check", "CKV_K8S_43", "-o", "json"], capture_output=True, text=True)
    results = json.loads(p.stdout)["results"]
    assert [r["check_id"] for r in results["passed_checks"]] == ["CKV_K8S_43"] and not results["failed_checks"]
