"""The architecture view: the resource graph folded into the boxes an Azure architect draws.

The resource graph (``stacks.diagram``) has one box per Terraform resource: prod is ~100 boxes
and ~180 arrows. Here every Terraform type is classified by one explicit table (``TYPES``) as

- a **box**: a service people name (storage account, Key Vault, AKS, Databricks jobs, ...);
  resources of a ``merge`` kind in one stack share one box ("MLflow experiments ×3");
- a **part** of a box: folded into the nearest box of the given types and listed in its label
  (containers into the storage account, subnets and NSGs into the virtual network);
- a **link**: drawn as a labelled edge between the boxes it connects (role assignments, Key Vault
  access policies, Unity Catalog grants, Databricks permissions, federated credentials), or, for
  network plumbing (private endpoints, DNS zone links), a line in the label of the box it serves;
- **hidden**: providers, data sources and the resource group, which say where things go rather
  than what is there; references pass through them, and a stack's title names the resource
  group and the box its provider deploys into.

A type the table does not know is not dropped: it becomes a box in the stack's "other" group,
so a new construct shows up in the picture until someone classifies it.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from .diagram import Diagram, strings

# Drawing order of the subsystem clusters, and their titles.
SUBSYSTEMS: dict[str, str] = {
    "network": "Network",
    "data": "Data",
    "secrets": "Secrets",
    "identity": "Identity",
    "compute": "Compute",
    "ml": "ML",
    "serving": "Serving",
    "monitoring": "Monitoring",
    "other": "Other (unclassified types)",
}
# Edge styles: plain references, then what link resources become.
USES, GRANT, IDENTITY = "uses", "grant", "identity"
# A link of style NOTE is not an edge: it becomes a line in the label of the box it serves
# ("private endpoint: blob, dfs" in the storage account), which keeps network plumbing off the arrows.
NOTE = "note"

# body -> [(from, to, verb, detail)]: from/to are field values (references or literal ids; "" for the
# resource itself), the edge is labelled "verb: detail"; detail None = the part the target names.
End = tuple[Any, Any, str, "str | None"]
LinkEnds = Callable[[dict[str, Any]], list[End]]


@dataclass(frozen=True)
class Kind:
    role: str  # "box", "part", "link" or "hidden"
    subsystem: str = "other"
    title: str = ""
    icon: str = ""  # a diagrams node class, "<module path under diagrams>.<Class>"
    merge: bool = False  # box: every resource of the type in a stack shares one box
    shorten: Callable[[str], str] | None = None  # box: a member's name as its label lists it
    into: tuple[str, ...] = ()  # part: the box types it folds into
    noun: str = ""  # part: how the label counts it, singular ("subnet" -> "4 subnets")
    list_names: bool = False  # part: list the names instead of counting
    ends: LinkEnds | None = None  # link: the edges it stands for; box: edges beside its references
    style: str = GRANT  # link: edge style


def box(subsystem: str, title: str, icon: str, merge: bool = False, ends: LinkEnds | None = None,
        style: str = USES, shorten: Callable[[str], str] | None = None) -> Kind:
    return Kind("box", subsystem, title, icon, merge, shorten, ends=ends, style=style)


def part(into: str | tuple[str, ...], noun: str, list_names: bool = False) -> Kind:
    return Kind("part", into=(into,) if isinstance(into, str) else into, noun=noun, list_names=list_names)


def link(ends: LinkEnds, style: str = GRANT) -> Kind:
    return Kind("link", ends=ends, style=style)


HIDDEN = Kind("hidden")


# --------------------------------------------------------------------------- link readers


def _first(value: Any) -> Any:
    """Terraform JSON writes one nested block as a dict or as a one-element list."""
    return value[0] if isinstance(value, list) and value else value


def _role_assignment(b: dict[str, Any]) -> list[End]:
    role = b.get("role_definition_name") or "role " + str(b.get("role_definition_id", "?"))
    return [(b.get("principal_id"), b.get("scope"), role, None)]


def _key_vault_access_policy(b: dict[str, Any]) -> list[End]:
    rights = [f"{what}: {', '.join(b[f'{what}_permissions'])}" for what in ("secret", "key", "certificate",
                                                                            "storage") if b.get(f"{what}_permissions")]
    return [(b.get("object_id"), b.get("key_vault_id"), "; ".join(rights) or "no permissions", None)]


# The securable a databricks_grants / databricks_grant resource is attached to.
_SECURABLES = ("metastore", "catalog", "schema", "table", "volume", "model", "function", "storage_credential",
               "external_location", "share", "foreign_connection", "credential")


def _securable(b: dict[str, Any]) -> str:
    return next((b[s] for s in _SECURABLES if isinstance(b.get(s), str)), "")


def _databricks_grants(b: dict[str, Any]) -> list[End]:
    return [(g.get("principal"), _securable(b), ", ".join(g.get("privileges", [])), None)
            for g in (b.get("grant") if isinstance(b.get("grant"), list) else [b.get("grant") or {}])]


def _databricks_grant(b: dict[str, Any]) -> list[End]:
    return [(b.get("principal"), _securable(b), ", ".join(b.get("privileges", [])), None)]


_PERMISSION_TARGETS = ("registered_model_id", "cluster_policy_id", "instance_pool_id", "job_id", "experiment_id",
                       "cluster_id", "directory_path", "workspace_file_path", "serving_endpoint_id",
                       "notebook_path", "sql_endpoint_id", "pipeline_id", "authorization")


def _databricks_permissions(b: dict[str, Any]) -> list[End]:
    target = next((b[t] for t in _PERMISSION_TARGETS if isinstance(b.get(t), str)), "")
    acl = b.get("access_control")
    return [(a.get("service_principal_name") or a.get("group_name") or a.get("user_name") or "", target,
             a.get("permission_level", "?"), None) for a in (acl if isinstance(acl, list) else [acl or {}])]


def _private_endpoint(b: dict[str, Any]) -> list[End]:
    connection = _first(b.get("private_service_connection")) or {}
    what = ", ".join(connection.get("subresource_names", []))
    return [(b.get("subnet_id"), connection.get("private_connection_resource_id"), "private endpoint", what)]


def _dns_zone_link(b: dict[str, Any]) -> list[End]:
    return [(b.get("virtual_network_id"), b.get("private_dns_zone_id"), "linked to", "")]


def _federated_credential(b: dict[str, Any]) -> list[End]:
    return [(b.get("issuer"), b.get("user_assigned_identity_id") or b.get("parent_id"), "federated credential",
             b.get("subject", "?"))]


def _diagnostic_setting(b: dict[str, Any]) -> list[End]:
    return [(b.get("target_resource_id"), b.get("log_analytics_workspace_id"), "diagnostics", "")]


def _secret_acl(b: dict[str, Any]) -> list[End]:
    return [(b.get("principal"), b.get("scope"), b.get("permission", "?"), None)]


def _job_run_as(b: dict[str, Any]) -> list[End]:
    run_as = _first(b.get("run_as")) or {}
    who = run_as.get("service_principal_name") or run_as.get("user_name")
    return [("", who, "runs as", "")] if who else []


def _storage_url(b: dict[str, Any]) -> list[End]:
    return [("", b.get("url"), "points at", None)]


def _zone(name: str) -> str:
    """privatelink.blob.core.windows.net -> blob: the service part is what tells zones apart."""
    return name.removeprefix("privatelink.").split(".")[0]


def _managed_private_endpoint(b: dict[str, Any]) -> list[End]:
    """Data Factory's managed network reaching a target (noted in the target's box, like private endpoints)."""
    return [(b.get("data_factory_id"), b.get("target_resource_id"), "managed private endpoint",
             b.get("subresource_name", ""))]


def _postgres_admin(b: dict[str, Any]) -> list[End]:
    return [(b.get("object_id"), b.get("server_name"), "Entra ID administrator", "")]


# --------------------------------------------------------------------------- the table

_NETWORK = "azurerm_virtual_network"
TYPES: dict[str, Kind] = {
    # where things go, not what is there
    "azurerm_resource_group": HIDDEN,
    "provider_azurerm": HIDDEN,
    "provider_databricks": HIDDEN,
    "provider_kubernetes": HIDDEN,
    "data.azurerm_kubernetes_cluster": HIDDEN,
    "data.azurerm_client_config": HIDDEN,
    "data.databricks_current_user": HIDDEN,
    "terraform_data": HIDDEN,  # the release-lock gate of prod-like stacks (stacks/release_gate.py): a check
    # network
    _NETWORK: box("network", "Virtual network", "azure.network.VirtualNetworks"),
    "azurerm_subnet": part(_NETWORK, "subnet"),
    "azurerm_network_security_group": part(_NETWORK, "NSG"),
    "azurerm_subnet_network_security_group_association": part(_NETWORK, "NSG association"),
    "azurerm_private_dns_zone": box("network", "Private DNS zones", "azure.network.DNSPrivateZones", merge=True,
                                    shorten=_zone),
    "azurerm_private_dns_zone_virtual_network_link": link(_dns_zone_link, NOTE),
    "azurerm_private_endpoint": link(_private_endpoint, NOTE),
    # data
    "azurerm_storage_account": box("data", "Storage account (ADLS Gen2)", "azure.storage.DataLakeStorage"),
    "azurerm_storage_container": part("azurerm_storage_account", "container", list_names=True),
    "azurerm_eventhub_namespace": box("data", "Event Hubs", "azure.analytics.EventHubs"),
    "azurerm_eventhub": part("azurerm_eventhub_namespace", "hub", list_names=True),
    "azurerm_eventhub_consumer_group": part("azurerm_eventhub_namespace", "consumer group", list_names=True),
    "azurerm_data_factory": box("data", "Data Factory", "azure.analytics.DataFactories"),
    "azurerm_data_factory_linked_service_azure_databricks": part("azurerm_data_factory", "linked service"),
    "azurerm_data_factory_linked_service_data_lake_storage_gen2": part("azurerm_data_factory", "linked service"),
    "azurerm_data_factory_linked_service_key_vault": part("azurerm_data_factory", "linked service"),
    # The pipelines live in the workspace stack (they name its jobs): a box of their own there.
    "azurerm_data_factory_pipeline": box("data", "Data Factory pipelines", "azure.analytics.DataFactories",
                                         merge=True),
    "azurerm_data_factory_trigger_schedule": part("azurerm_data_factory_pipeline", "schedule trigger"),
    # issue 13: the rest of the factory folds into its box; its managed network's endpoints are notes
    "azurerm_data_factory_linked_custom_service": part(("azurerm_data_factory", "azurerm_data_factory_pipeline"),
                                                       "linked service"),
    "azurerm_data_factory_linked_service_azure_sql_database": part("azurerm_data_factory", "linked service"),
    "azurerm_data_factory_dataset_parquet": part("azurerm_data_factory", "dataset"),
    "azurerm_data_factory_dataset_azure_sql_table": part("azurerm_data_factory", "dataset"),
    "azurerm_data_factory_integration_runtime_azure": part("azurerm_data_factory", "managed-VNet runtime"),
    "azurerm_data_factory_credential_user_managed_identity": part("azurerm_data_factory", "credential"),
    "azurerm_data_factory_managed_private_endpoint": link(_managed_private_endpoint, NOTE),
    "azurerm_postgresql_flexible_server": box("data", "PostgreSQL flexible server",
                                              "azure.databases.AzureDatabasePostgresqlServer"),
    "azurerm_postgresql_flexible_server_database": part("azurerm_postgresql_flexible_server", "database",
                                                        list_names=True),
    "azurerm_postgresql_flexible_server_configuration": part("azurerm_postgresql_flexible_server", "setting"),
    "azurerm_postgresql_flexible_server_firewall_rule": part("azurerm_postgresql_flexible_server",
                                                             "firewall rule"),
    "azurerm_postgresql_flexible_server_active_directory_administrator": link(_postgres_admin),
    # the BI database's token identity (export task): a UC service credential on its access connector
    "databricks_credential": box("identity", "UC service credential", "azure.identity.ManagedIdentities"),
    "databricks_metastore_assignment": box("data", "Unity Catalog metastore", "azure.integration.DataCatalog"),
    "databricks_storage_credential": box("data", "UC storage credential", "azure.identity.ManagedIdentities"),
    "databricks_external_location": box("data", "UC external locations", "azure.general.StorageContainer",
                                        merge=True, ends=_storage_url),
    "databricks_catalog": box("data", "UC catalogs", "azure.integration.DataCatalog", merge=True),
    "databricks_schema": box("data", "UC schemas", "azure.general.Table", merge=True),
    "databricks_volume": box("data", "UC volumes", "azure.general.Files", merge=True),
    "databricks_grants": link(_databricks_grants),
    "databricks_grant": link(_databricks_grant),
    # secrets
    "azurerm_key_vault": box("secrets", "Key Vault", "azure.security.KeyVaults"),
    "azurerm_key_vault_secret": part("azurerm_key_vault", "secret"),
    "azurerm_key_vault_access_policy": link(_key_vault_access_policy),
    "databricks_secret_scope": box("secrets", "Secret scope (Key Vault-backed)", "azure.general.Controls"),
    "databricks_secret": part("databricks_secret_scope", "secret"),
    "databricks_secret_acl": link(_secret_acl),
    # identity
    "azurerm_user_assigned_identity": box("identity", "Managed identity", "azure.identity.ManagedIdentities"),
    "azurerm_databricks_access_connector": box("identity", "Databricks access connector",
                                               "azure.identity.ManagedIdentities"),
    "databricks_service_principal": box("identity", "Databricks service principal",
                                        "azure.identity.EnterpriseApplications"),
    "azurerm_federated_identity_credential": link(_federated_credential, IDENTITY),
    "azurerm_role_assignment": link(_role_assignment),
    "databricks_permissions": link(_databricks_permissions),
    # compute
    "azurerm_databricks_workspace": box("compute", "Databricks workspace", "azure.analytics.Databricks"),
    "azurerm_kubernetes_cluster": box("compute", "AKS cluster", "azure.compute.KubernetesServices"),
    "azurerm_container_registry": box("compute", "Container registry", "azure.compute.ContainerRegistries"),
    "databricks_instance_pool": box("compute", "Instance pools", "azure.compute.VMScaleSets", merge=True),
    "databricks_cluster_policy": box("compute", "Cluster policies", "azure.managementgovernance.Policy",
                                     merge=True),
    "azurerm_machine_learning_compute_cluster": box("compute", "Azure ML compute clusters",
                                                    "azure.compute.VMScaleSets", merge=True),
    "azurerm_machine_learning_compute_instance": box("compute", "Azure ML compute instances",
                                                     "azure.compute.VM", merge=True),
    # ML
    "databricks_job": box("ml", "Databricks jobs", "azure.general.Workflow", merge=True, ends=_job_run_as,
                          style=IDENTITY),
    "databricks_mlflow_experiment": box("ml", "MLflow experiments", "onprem.mlops.Mlflow", merge=True),
    "databricks_mlflow_model": box("ml", "Registered models", "azure.aimachinelearning.MachineLearning",
                                   merge=True),
    "databricks_registered_model": box("ml", "UC registered models", "azure.aimachinelearning.MachineLearning",
                                       merge=True),
    "databricks_workspace_file": box("ml", "Workspace files", "azure.general.Files", merge=True),
    "azurerm_machine_learning_workspace": box("ml", "Azure ML workspace",
                                              "azure.ml.MachineLearningServiceWorkspaces"),
    "azurerm_application_insights": box("monitoring", "Application Insights", "azure.devops.ApplicationInsights"),
    # serving (Kubernetes objects of the scoring service fold into its deployment)
    "kubernetes_deployment_v1": box("serving", "Scoring deployment", "k8s.compute.Deploy", merge=True),
    "kubernetes_service_v1": part("kubernetes_deployment_v1", "service", list_names=True),
    "kubernetes_namespace_v1": part("kubernetes_deployment_v1", "namespace", list_names=True),
    "kubernetes_config_map_v1": part("kubernetes_deployment_v1", "config map"),
    "kubernetes_horizontal_pod_autoscaler_v2": part("kubernetes_deployment_v1", "autoscaler"),
    "kubernetes_pod_disruption_budget_v1": part("kubernetes_deployment_v1", "disruption budget"),
    "kubernetes_network_policy_v1": part("kubernetes_deployment_v1", "network policy"),
    "kubernetes_service_account_v1": box("serving", "Service account (workload identity)", "k8s.rbac.SA"),
    # monitoring
    "azurerm_log_analytics_workspace": box("monitoring", "Log Analytics", "azure.analytics.LogAnalyticsWorkspaces"),
    "azurerm_monitor_diagnostic_setting": link(_diagnostic_setting, USES),
}
UNKNOWN_ICON = "azure.general.Resource"


def type_key(address: str, rtype: str) -> str:
    """The table's key of a node: data sources are ``data.<type>``, so reading is not creating."""
    return f"data.{rtype}" if address.startswith("data.") else rtype


def kind_of(key: str) -> Kind:
    return TYPES.get(key) or box("other", key, UNKNOWN_ICON)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Principal:
    """A principal outside the stacks (named in the environment file by its object/application id)."""

    name: str
    group: bool = False


@dataclass
class Box:
    id: str
    stack: str  # "" for principals outside the stacks
    subsystem: str
    title: str
    icon: str
    members: list[str] = field(default_factory=list)  # resource names (merged boxes)
    parts: dict[str, list[str]] = field(default_factory=dict)  # part noun -> names
    notes: dict[str, list[str]] = field(default_factory=dict)  # folded links: verb -> details
    unclassified: bool = False

    @property
    def name(self) -> str:
        return _compact([_short_id(m) for m in self.members])

    @property
    def label(self) -> str:
        lines = [self.title + (f" ×{len(self.members)}" if len(self.members) > 1 else "")]
        lines += _wrap(self.name)
        counted = []
        for noun, names in self.parts.items():
            plural = _plural(noun) if len(names) > 1 else noun
            if names[0]:
                lines += _wrap(f"{plural}: {_compact(names)}")
            else:
                counted.append(f"{len(names)} {plural}" if len(names) > 1 else noun)
        lines += _wrap(" · ".join(counted))
        for verb, details in self.notes.items():
            named = sorted(d for d in dict.fromkeys(details) if d)
            lines += _wrap(f"{verb}: {', '.join(named)}" if named else verb)
        return "\n".join(lines)


@dataclass
class Arrow:
    source: str  # box id
    target: str  # box id
    style: str
    details: dict[str, list[str]] = field(default_factory=dict)  # verb -> the parts/members it applies to

    @property
    def label(self) -> str:
        lines = []
        for verb, names in self.details.items():
            named = [n for n in dict.fromkeys(names) if n]
            count = f" ×{len(names)}" if len(names) > 1 else ""
            text = f"{verb}: {', '.join(sorted(named))}" if named else verb + count
            lines += _wrap(text, width=34)
        return "\n".join(lines)


@dataclass
class Architecture:
    env: str
    stacks: list[str]
    boxes: dict[str, Box]
    arrows: list[Arrow]
    stack_titles: dict[str, str]  # stack -> cluster title (with the resource group)
    resources: int  # resources behind the picture, for the summary line
    references: int
    ties: list[tuple[str, str]] = field(default_factory=list)  # NOTE links: not drawn, but kept close


def _name(body: dict[str, Any], node_label: str) -> str:
    """A resource's own name when the JSON has it literally, else its construct path's last step."""
    for attr in ("name", "display_name", "instance_pool_name", "path", "metastore_id"):
        value = body.get(attr)
        if isinstance(value, str) and "${" not in value:
            return value
    meta = _first(body.get("metadata"))
    if isinstance(meta, dict) and isinstance(meta.get("name"), str) and "${" not in meta["name"]:
        return meta["name"]
    path = body.get("//", {}).get("metadata", {}).get("path", "")
    return path.rsplit("/", 2)[-2] if path.count("/") >= 2 else node_label.split("\n")[-1]


_SEPARATORS = "-_/."
_ABFSS = re.compile(r"abfss://([^@/]+)@([a-z0-9]+)\.dfs\.core\.windows\.net/?.*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def _short_id(text: str) -> str:
    return f"{text[:8]}…" if _UUID.fullmatch(text) else text


def _compact(names: list[str]) -> str:
    """``a-x, a-y`` -> ``a-{x, y}``: the shared prefix and suffix (at separators) written once."""
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        return names[0] if names else ""
    prefix, suffix = _affixes(names)
    if not prefix and not suffix:
        return ", ".join(names)
    middles = ", ".join(n[len(prefix):len(n) - len(suffix)] for n in names)
    return f"{prefix}{{{middles}}}{suffix}"


def _affixes(names: list[str]) -> tuple[str, str]:
    """The prefix and suffix every name shares, cut at separators."""
    prefix = _common(names)
    return prefix, _common([n[len(prefix):][::-1] for n in names])[::-1]


def _common(names: list[str]) -> str:
    first, n = names[0], 0
    while all(len(x) > n and x[n] == first[n] for x in names):
        n += 1
    cut = max((i + 1 for i in range(n) if first[i] in _SEPARATORS), default=0)
    return first[:cut] if all(len(x) > cut for x in names) else ""


def _wrap(text: str, width: int = 30) -> list[str]:
    if not text:
        return []
    lines, line = [], ""
    for word in re.split(r"(?<=[ ,{])", text):
        if line and len(line) + len(word) > width:
            lines.append(line.rstrip())
            line = "  "
        line += word
    return lines + [line.rstrip()]


class _Builder:
    def __init__(self, env: str, diagram: Diagram, principals: Mapping[str, Principal]):
        self.env, self.diagram, self.principals = env, diagram, principals
        self.kinds = {k: kind_of(type_key(n.address, n.type)) for k, n in diagram.nodes.items()}
        self.names = {k: _name(diagram.bodies.get(k, {}), n.label) for k, n in diagram.nodes.items()}
        self.neighbours: dict[str, set[str]] = {k: set() for k in diagram.nodes}
        self.uses: dict[str, set[str]] = {k: set() for k in diagram.nodes}  # referencer -> referenced
        for e in diagram.edges:
            self.neighbours[e.source].add(e.target)
            self.neighbours[e.target].add(e.source)
            self.uses[e.target].add(e.source)
        self.boxes: dict[str, Box] = {}
        self.box_of: dict[str, str] = {}  # node key -> box id
        self.detail_of: dict[str, str] = {}  # node key -> its name inside the box label (parts, members)
        self.arrows: dict[tuple[str, str, str], Arrow] = {}
        self.ties: dict[tuple[str, str], None] = {}

    def build(self) -> Architecture:
        nodes = self.diagram.nodes
        for key, node in nodes.items():
            kind = self.kinds[key]
            if kind.role == "box":
                self._place(key, kind)
        for key in nodes:
            kind = self.kinds[key]
            if kind.role == "part":
                parent = self._nearest_box(key, kind.into)
                if parent is None:  # nothing to fold into: drawn on its own, never lost
                    home = TYPES.get(kind.into[0], kind_of(""))
                    self._place(key, box(home.subsystem, nodes[key].type, home.icon or UNKNOWN_ICON))
                    continue
                self.box_of[key] = parent
                self.detail_of[key] = self.names[key]
                self.boxes[parent].parts.setdefault(kind.noun, []).append(self.names[key] if kind.list_names else "")
        self._member_details()
        for key in nodes:
            kind = self.kinds[key]
            if kind.role == "link" or (kind.ends is not None and key in self.box_of):
                self._link(key)
        for key in nodes:
            if key in self.box_of:
                for used in self._used_boxes(key):
                    if used != self.box_of[key]:
                        self._arrow(self.box_of[key], used, USES, "", "")
        stacks = list(dict.fromkeys(n.stack for n in nodes.values()))
        titles = {s: s for s in stacks}
        for key, node in nodes.items():
            if node.type == "azurerm_resource_group" and not node.address.startswith("data."):
                titles[node.stack] += f" · resource group {self.names[key]}"
        for key, node in nodes.items():  # a provider's target: where the whole stack deploys into
            if node.type.startswith("provider_"):
                for used in dict.fromkeys(self._used_boxes(key)):
                    if self.boxes[used].stack != node.stack:
                        titles[node.stack] += f" · into {self.boxes[used].name} ({node.type[9:]} provider)"
        styled = {(a.source, a.target) for a in self.arrows.values() if a.style != USES}
        arrows = [a for a in self.arrows.values() if a.style != USES or (a.source, a.target) not in styled]
        return Architecture(self.env, stacks, self.boxes, arrows, titles,
                            resources=len(nodes), references=len(self.diagram.edges), ties=list(self.ties))

    def _place(self, key: str, kind: Kind) -> None:
        node = self.diagram.nodes[key]
        box_id = f"{node.stack}:{kind.title}" if kind.merge else key
        if box_id not in self.boxes:
            self.boxes[box_id] = Box(box_id, node.stack, kind.subsystem, kind.title, kind.icon,
                                     unclassified=type_key(node.address, node.type) not in TYPES)
        self.boxes[box_id].members.append(kind.shorten(self.names[key]) if kind.shorten else self.names[key])
        self.box_of[key] = box_id

    def _member_details(self) -> None:
        """Inside a merged box a member is known by what differs from its siblings ("raw", "curated")."""
        by_box: dict[str, list[str]] = {}
        for key, box_id in self.box_of.items():
            if self.kinds[key].role == "box":
                by_box.setdefault(box_id, []).append(key)
        for box_id, keys in by_box.items():
            if len(keys) < 2:
                continue
            names = [self.names[k] for k in keys]
            prefix, suffix = _affixes(names)
            for k, n in zip(keys, names):
                self.detail_of[k] = n[len(prefix):len(n) - len(suffix)]

    def _nearest_box(self, start: str, types: tuple[str, ...]) -> str | None:
        """Breadth-first over references (either way, within the stack) to a box of ``types``."""
        stack = self.diagram.nodes[start].stack
        seen, queue = {start}, deque([start])
        while queue:
            key = queue.popleft()
            for nxt in sorted(self.neighbours[key]):
                if nxt in seen or self.diagram.nodes[nxt].stack != stack:
                    continue
                seen.add(nxt)
                kind = self.kinds[nxt]
                if kind.role == "box" and self.diagram.nodes[nxt].type in types:
                    return self.box_of[nxt]
                if kind.role == "part":  # boxes of other types end the walk
                    queue.append(nxt)
        return None

    def _used_boxes(self, key: str) -> Iterator[str]:
        """Boxes ``key`` references, looking through hidden nodes (providers, data sources)."""
        seen, stack = {key}, list(self.uses[key])
        while stack:
            used = stack.pop()
            if used in seen:
                continue
            seen.add(used)
            if used in self.box_of:
                yield self.box_of[used]
            elif self.kinds[used].role == "hidden":
                stack.extend(self.uses[used])

    def _ends(self, key: str, value: Any) -> list[tuple[str, str]]:
        """(box id, detail) a link's field points at: the resource itself (""), a resource in the graph
        (by reference, or a storage URL by account name), or a principal outside the stacks."""
        stack = self.diagram.nodes[key].stack
        if value == "":
            return [(self.box_of[key], "")]
        found = []
        for text in strings(value):
            url = _ABFSS.fullmatch(text)
            if url:
                found += self._storage(*url.groups())
                continue
            for ref, _ in self.diagram.references(stack, text):
                targets = [ref] if ref in self.box_of else []
                if not targets and self.kinds[ref].role == "hidden":
                    targets = [u for u in self.uses[ref] if u in self.box_of]
                found += [(self.box_of[t], self.detail_of.get(t, "")) for t in targets]
            if "${" not in text and text:
                found.append((self._outside(text), ""))
        return found

    def _storage(self, container: str, account: str) -> list[tuple[str, str]]:
        for key, node in self.diagram.nodes.items():
            if node.type == "azurerm_storage_account" and self.names[key] == account and key in self.box_of:
                return [(self.box_of[key], container)]
        return [(self._outside(f"{container}@{account}"), "")]

    def _outside(self, literal: str) -> str:
        principal = self.principals.get(literal) or Principal(f"outside the stacks: {_short_id(literal)}")
        box_id = f"principal:{principal.name}"
        if box_id not in self.boxes:
            icon = "azure.identity.Groups" if principal.group else "azure.identity.EnterpriseApplications"
            self.boxes[box_id] = Box(box_id, "", "principals", principal.name, icon)
        return box_id

    def _link(self, key: str) -> None:
        kind = self.kinds[key]
        assert kind.ends is not None
        for source, target, verb, detail in kind.ends(self.diagram.bodies.get(key, {})):
            for s, _ in self._ends(key, source):
                for t, part_name in self._ends(key, target):
                    self._arrow(s, t, kind.style, verb, part_name if detail is None else detail)

    def _arrow(self, source: str, target: str, style: str, verb: str, detail: str) -> None:
        if style == NOTE:
            self.boxes[target].notes.setdefault(verb, []).append(detail or self.boxes[source].name)
            self.ties.setdefault((source, target), None)
            return
        arrow = self.arrows.setdefault((source, target, style), Arrow(source, target, style))
        if verb:
            arrow.details.setdefault(verb, []).append(detail)


def build_architecture(env: str, diagram: Diagram, principals: Mapping[str, Principal] | None = None
                       ) -> Architecture:
    """``diagram``: the resource graph of one environment's stacks; ``principals``: id -> who it is."""
    return _Builder(env, diagram, principals or {}).build()
