"""What exists in the cloud, to find objects Terraform does not manage.

Azure: every resource in the environment's resource group (ARM ``resources`` list, paged by
``nextLink``): with issue 13's systems on, that includes the Data Factory, the Azure ML workspace
and its storage account, Application Insights and the factory's user-assigned identity; a
factory's pipelines, linked services and triggers are its child resources, which ARM does not
list by resource group (the plan's refresh covers them). Databricks: jobs, instance pools, cluster policies and clusters, and the Unity
Catalog registered models of the given schemas (all paged by ``next_page_token``). Both go through the official SDK clients with an Entra ID credential
(service principal, managed identity or OIDC federated credential): no personal tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

# Databricks object kind -> the Terraform resource type that manages it.
DATABRICKS_TF_TYPES = {
    "job": "databricks_job",
    "instance_pool": "databricks_instance_pool",
    "cluster_policy": "databricks_cluster_policy",
    "cluster": "databricks_cluster",
    "registered_model": "databricks_registered_model",  # id: catalog.schema.model
    "service_credential": "databricks_credential",  # id: the credential's name (the export's token)
}
# Unity Catalog names are case-insensitive (stored lower-case); compare them that way.
CASE_INSENSITIVE = {"registered_model", "service_credential"}
# The AzureDatabricks first-party application: the audience of Databricks Entra ID tokens.
DATABRICKS_SCOPE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"


@dataclass(frozen=True)
class CloudObject:
    service: str  # azure | databricks
    type: str     # ARM type (Microsoft.Storage/storageAccounts) or databricks kind (job, cluster, ...)
    id: str
    name: str
    source: str = ""  # clusters: cluster_source (UI, API, JOB, PIPELINE, ...)


# ------------------------------------------------------------------ managed ids from Terraform


def managed_ids(plan_or_state: dict[str, Any]) -> set[tuple[str, str]]:
    """{(terraform type, id)} of managed resources in a plan's ``prior_state`` or a state JSON.

    Azure ids are lower-cased: ARM ids are case-insensitive and providers differ in casing.
    """
    values = (plan_or_state.get("prior_state") or plan_or_state).get("values") or {}
    out: set[tuple[str, str]] = set()
    stack = [values.get("root_module") or {}]
    while stack:
        mod = stack.pop()
        stack.extend(mod.get("child_modules") or ())
        for r in mod.get("resources") or ():
            if r.get("mode") != "managed":
                continue
            rid = (r.get("values") or {}).get("id")
            if rid:
                out.add((r["type"], str(rid).lower() if str(rid).startswith("/subscriptions/") else str(rid)))
    return out


def unmanaged(objects: Iterable[CloudObject], managed: set[tuple[str, str]]) -> list[CloudObject]:
    azure_ids = {rid for _, rid in managed if rid.startswith("/subscriptions/")}
    out = []
    for o in objects:
        if o.service == "azure":
            if o.id.lower() not in azure_ids:
                out.append(o)
        elif o.type in CASE_INSENSITIVE:
            if (DATABRICKS_TF_TYPES[o.type], o.id.lower()) not in {(t, i.lower()) for t, i in managed}:
                out.append(o)
        elif (DATABRICKS_TF_TYPES[o.type], o.id) not in managed:
            out.append(o)
    return sorted(out, key=lambda o: (o.service, o.type, o.name, o.id))


# ------------------------------------------------------------------ Azure


def azure_client(credential, subscription_id: str, **kwargs):
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(credential, subscription_id, **kwargs)


def azure_resources(client, resource_group: str) -> list[CloudObject]:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return [CloudObject("azure", r.type, r.id, r.name) for r in client.resources.list_by_resource_group(resource_group)]
    except ResourceNotFoundError:
        return []  # the resource group itself is gone: every managed resource shows up as deleted


# ------------------------------------------------------------------ Databricks


class EntraIdStrategy:
    """databricks-sdk credentials strategy backed by an azure-identity credential."""

    def __init__(self, credential):
        self.credential = credential

    def auth_type(self) -> str:
        return "azure-identity"

    def __call__(self, cfg):
        def headers() -> dict[str, str]:
            return {"Authorization": f"Bearer {self.credential.get_token(DATABRICKS_SCOPE).token}"}
        return headers


def databricks_client(host: str, credential, **kwargs):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config
    from databricks.sdk.credentials_provider import CredentialsStrategy

    CredentialsStrategy.register(EntraIdStrategy)
    cfg = Config(host=host, credentials_strategy=EntraIdStrategy(credential), **kwargs)
    return WorkspaceClient(config=cfg)


def databricks_objects(w, uc_schemas: Iterable[tuple[str, str]] = (), credentials: bool = False) -> list[CloudObject]:
    """``uc_schemas``: (catalog, schema) pairs whose registered models to list; ``credentials``: list the
    metastore's service credentials too (environments with a BI database export have one)."""
    out = [CloudObject("databricks", "job", str(j.job_id), (j.settings.name if j.settings else "") or "")
           for j in w.jobs.list()]
    out += [CloudObject("databricks", "instance_pool", p.instance_pool_id, p.instance_pool_name or "")
            for p in w.instance_pools.list()]
    # Default policies (Personal Compute, Job Compute, ...) are created and managed by Databricks.
    out += [CloudObject("databricks", "cluster_policy", p.policy_id, p.name or "")
            for p in w.cluster_policies.list() if not p.is_default]
    out += [CloudObject("databricks", "cluster", c.cluster_id, c.cluster_name or "",
                        c.cluster_source.value if c.cluster_source else "") for c in w.clusters.list()]
    for catalog, schema in uc_schemas:
        out += registered_models(w, catalog, schema)
    if credentials:
        out += service_credentials(w)
    return out


def service_credentials(w) -> list[CloudObject]:
    """Unity Catalog service credentials (identities jobs get tokens from) visible to the caller."""
    from databricks.sdk.service.catalog import CredentialPurpose

    return [CloudObject("databricks", "service_credential", c.name or "", c.name or "")
            for c in w.credentials.list_credentials(purpose=CredentialPurpose.SERVICE)]


def registered_models(w, catalog: str, schema: str) -> list[CloudObject]:
    from databricks.sdk.errors import NotFound

    try:
        return [CloudObject("databricks", "registered_model", m.full_name or f"{catalog}.{schema}.{m.name}",
                            m.full_name or f"{catalog}.{schema}.{m.name}")
                for m in w.registered_models.list(catalog_name=catalog, schema_name=schema)]
    except NotFound:
        return []  # the schema itself is gone: the refresh reports it (and its models) as deleted
