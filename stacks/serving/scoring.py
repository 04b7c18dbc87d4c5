"""The scoring service's Kubernetes objects: namespace, service account (workload identity),
settings ConfigMap, Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget and a
NetworkPolicy. Hardened pod: non-root, read-only root filesystem, no capabilities, no
Kubernetes API token (the workload-identity webhook projects its own Entra ID token)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cdktn import TerraformResourceLifecycle
from cdktn_provider_kubernetes.config_map_v1 import ConfigMapV1
from cdktn_provider_kubernetes.deployment_v1 import DeploymentV1
from cdktn_provider_kubernetes.horizontal_pod_autoscaler_v2 import HorizontalPodAutoscalerV2
from cdktn_provider_kubernetes.namespace_v1 import NamespaceV1
from cdktn_provider_kubernetes.network_policy_v1 import NetworkPolicyV1
from cdktn_provider_kubernetes.pod_disruption_budget_v1 import PodDisruptionBudgetV1
from cdktn_provider_kubernetes.service_account_v1 import ServiceAccountV1
from cdktn_provider_kubernetes.service_v1 import ServiceV1
from constructs import Construct


PORT = 8080
SETTINGS_DIR = "/etc/mlkit"
UID = "10001"  # the image's non-root user (workloads/Dockerfile)


@dataclass(frozen=True)
class ScoringServiceProps:
    env: str
    namespace: str
    service_account: str
    app: str
    image: str
    workload_client_id: str     # user-assigned identity the service account acts as
    settings: dict[str, Any]    # resolved workload settings (what the container reads)
    env_vars: dict[str, str]    # vault URI, Event Hubs namespace/hub, registry location
    served_models: tuple[str, ...] = ()  # full names of the models the pods serve (an annotation)
    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    min_replicas: int = 2
    max_replicas: int = 4
    target_cpu_percent: int = 70
    labels: dict[str, str] = field(default_factory=dict)


class ScoringService(Construct):
    def __init__(self, scope: Construct, id_: str, props: ScoringServiceProps):
        super().__init__(scope, id_)
        p = props
        labels = {"app.kubernetes.io/name": p.app, "app.kubernetes.io/part-of": "mlkit",
                  "app.kubernetes.io/managed-by": "terraform", **p.labels}
        selector = {"app.kubernetes.io/name": p.app}

        self.namespace = NamespaceV1(self, "namespace", metadata=[js({
            "name": p.namespace,
            # Pod Security Admission: reject anything that is not "restricted" in this namespace.
            "labels": {**labels, "pod-security.kubernetes.io/enforce": "restricted",
                       "pod-security.kubernetes.io/enforce-version": "latest"}})])
        ns = self.namespace.metadata.get(0).name

        self.service_account = ServiceAccountV1(self, "service-account", metadata=js({
            "name": p.service_account, "namespace": ns, "labels": labels,
            "annotations": {"azure.workload.identity/client-id": p.workload_client_id}}),
            automount_service_account_token=False)

        self.config = ConfigMapV1(self, "settings", metadata=js({"name": f"{p.app}-settings", "namespace": ns,
                                                                 "labels": labels}),
                                  data={"settings.json": json.dumps(p.settings, indent=1, sort_keys=True)})

        probe = {"http_get": {"path": "/healthz", "port": str(PORT)}}
        container = {
            "name": p.app,
            "image": p.image,
            # Always: a re-pushed tag can never be served stale from a node's cache (CKV_K8S_15).
            "image_pull_policy": "Always",
            "args": ["--env", p.env, "--settings", f"{SETTINGS_DIR}/settings.json", "--host", "0.0.0.0",
                     "--port", str(PORT)],
            "port": [{"name": "http", "container_port": PORT, "protocol": "TCP"}],
            "env": [{"name": k, "value": v} for k, v in sorted(p.env_vars.items())],
            "resources": {"requests": {"cpu": p.cpu_request, "memory": p.memory_request},
                          "limits": {"cpu": p.cpu_limit, "memory": p.memory_limit}},
            # Start-up downloads the champion: allow it 5 minutes before liveness may restart the pod.
            "startup_probe": {**probe, "period_seconds": 10, "failure_threshold": 30, "timeout_seconds": 2},
            "liveness_probe": {**probe, "period_seconds": 10, "failure_threshold": 3, "timeout_seconds": 2},
            # Not ready = no model loaded (or no API keys): the Service sends it no traffic.
            "readiness_probe": {"http_get": {"path": "/readyz", "port": str(PORT)}, "period_seconds": 5,
                                "failure_threshold": 2, "timeout_seconds": 2},
            "security_context": {"allow_privilege_escalation": False, "read_only_root_filesystem": True,
                                 "run_as_non_root": True, "run_as_user": UID, "run_as_group": UID,
                                 "privileged": False, "capabilities": {"drop": ["ALL"]},
                                 "seccomp_profile": {"type": "RuntimeDefault"}},
            "volume_mount": [{"name": "settings", "mount_path": SETTINGS_DIR, "read_only": True},
                             {"name": "tmp", "mount_path": "/tmp"}],
        }
        self.deployment = DeploymentV1(
            self, "deployment",
            metadata=js({"name": p.app, "namespace": ns, "labels": labels,
                         "annotations": {"mlkit/served-models": ",".join(p.served_models)}}),
            spec=js({
                "replicas": str(p.min_replicas),
                "selector": {"match_labels": selector},
                # Surge, never go below the current count: an image roll-out drops no requests.
                "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": "1", "max_unavailable": "0"}},
                "template": {
                    "metadata": {"labels": {**labels, "azure.workload.identity/use": "true"},
                                 "annotations": {"mlkit/settings-sha": _digest(p.settings)}},
                    "spec": {
                        "service_account_name": p.service_account,
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "termination_grace_period_seconds": 30,
                        "security_context": {"run_as_non_root": True, "run_as_user": UID, "run_as_group": UID,
                                             "fs_group": UID, "seccomp_profile": {"type": "RuntimeDefault"}},
                        "topology_spread_constraint": [{
                            "max_skew": 1, "topology_key": "kubernetes.io/hostname",
                            "when_unsatisfiable": "ScheduleAnyway", "label_selector": [{"match_labels": selector}]}],
                        "container": [container],
                        "volume": [
                            {"name": "settings", "config_map": {"name": self.config.metadata.name}},
                            # Model cache and temp files: the root filesystem is read-only.
                            {"name": "tmp", "empty_dir": {"size_limit": "2Gi"}},
                        ],
                    },
                },
            }),
            # The HPA owns the replica count after the first apply.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["spec[0].replicas"]),
            depends_on=[self.service_account],
        )


        self.service = ServiceV1(self, "service", metadata=js({"name": p.app, "namespace": ns, "labels": labels}),
                                 spec=js({"type": "ClusterIP", "selector": selector,
                                          "port": [{"name": "http", "port": 80, "target_port": "http"}]}))

        self.autoscaler = HorizontalPodAutoscalerV2(self, "autoscaler", metadata=js({
            "name": p.app, "namespace": ns, "labels": labels}), spec=js({
            "min_replicas": p.min_replicas, "max_replicas": p.max_replicas,
            "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": p.app},
            "metric": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "average_utilization": p.target_cpu_percent}}}]}))

        self.disruption_budget = PodDisruptionBudgetV1(self, "disruption-budget", metadata=js({
            "name": p.app, "namespace": ns, "labels": labels}),
            spec=js({"min_available": "1", "selector": {"match_labels": selector}}))

        # In: only the service port, from pods in the cluster. Out: DNS, HTTPS (Entra ID, Key Vault,
        # registry, storage) and AMQP over TLS (Event Hubs). Everything else is dropped.
        self.network_policy = NetworkPolicyV1(self, "network-policy", metadata=js({
            "name": p.app, "namespace": ns, "labels": labels}), spec=js({
            "pod_selector": {"match_labels": selector},
            "policy_types": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespace_selector": {}}],
                         "ports": [{"port": str(PORT), "protocol": "TCP"}]}],
            "egress": [{"ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"},
                                  {"port": "443", "protocol": "TCP"}, {"port": "5671", "protocol": "TCP"}]}]}))


# Free-form string maps: their keys are data (label names, file names), never struct fields.
_MAPS = {"labels", "annotations", "data", "match_labels", "node_selector", "requests", "limits"}


def js(value: Any, _raw: bool = False, _in_map: bool = False) -> Any:
    """Nested dicts for jsii structs. The Python bindings build a struct from a dict (snake_case
    keys) only where the field is a single struct; items of a *list* of structs go to jsii as plain
    mappings, which it matches by JS (camelCase) field names. So: camelCase from the first list down."""
    if isinstance(value, dict):
        if _in_map:
            return dict(value)
        return {(_camel(k) if _raw else k): js(v, _raw, k in _MAPS) for k, v in value.items()}
    if isinstance(value, list):
        return [js(v, True) for v in value]
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _digest(settings: dict[str, Any]) -> str:
    """Changes when the settings change, so the Deployment rolls and pods read the new ConfigMap."""
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
