"""orchestration-ml: Data Factory, the Azure ML workspace and Application Insights (issue 13).

Identity only (no keys, passwords or tokens in linked services), no public endpoints where the
environment is private, encrypted connections, and a pipeline that retries and fails loudly.
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from ..model import Context, Element
from ..secrets import CONNECTION_STRING_SECRET
from ..values import get, is_false, is_ref, is_true, json_document, show
from .pack import Pack

PACK = Pack("orchestration-ml")
rule = PACK.rule

ADF = ("azurerm_data_factory",)
LINKED = ("azurerm_data_factory_linked_service_azure_sql_database", "azurerm_data_factory_linked_service_data_lake_storage_gen2",
          "azurerm_data_factory_linked_service_azure_databricks", "azurerm_data_factory_linked_service_azure_blob_storage",
          "azurerm_data_factory_linked_service_sql_server", "azurerm_data_factory_linked_service_postgresql",
          "azurerm_data_factory_linked_service_key_vault", "azurerm_data_factory_linked_custom_service")
PIPELINE = ("azurerm_data_factory_pipeline",)
MLW = ("azurerm_machine_learning_workspace",)
APPI = ("azurerm_application_insights",)

# Attributes that carry a credential; any value (even a Key Vault reference) means key/password auth.
SECRET_ATTRIBUTES = ("service_principal_key", "storage_account_key", "access_token", "key_vault_password",
                     "sas_uri", "key_vault_sas_token", "password")
# Secrets inside a connection string: the same test the secret scan (MLK-GOV-003) applies.
SECRET_IN_TEXT = CONNECTION_STRING_SECRET
SECRET_KEYS = {"accesstoken", "password", "accountkey", "encryptedcredential", "serviceprincipalkey",
               "sastoken", "sasuri", "connectionstring"}


def _private(ctx: Context) -> bool:
    return bool(ctx.cfg.network.private)


# ----------------------------------------------------------------------------- Data Factory

@rule("MLK-ADF-001", "error", "Data Factory linked services authenticate with managed identity", types=LINKED,
      why="A key, password or token in a linked service is a long-lived secret in Terraform state and in the "
          "factory, usable from anywhere; a managed identity has no secret to leak and is granted per resource.",
      fix="Set use_managed_identity = true (or a credential_name / MSI authentication with a credential) and "
          "remove keys, passwords, tokens and SAS URIs.")
def adf_managed_identity(el: Element, ctx: Context) -> Iterable[str]:
    for attr in SECRET_ATTRIBUTES:
        if el.config.get(attr) not in (None, "", []):
            yield f"{attr} is set: the linked service authenticates with a secret"
    for attr in ("connection_string", "url"):
        value = el.config.get(attr)
        if isinstance(value, str) and not is_ref(value) and SECRET_IN_TEXT.search(value):
            yield f"{attr} embeds a password or key"
    if el.type == "azurerm_data_factory_linked_custom_service":
        props = json_document(el.config.get("type_properties_json")) or {}
        found = sorted(k for k in _keys(props) if k.lower() in SECRET_KEYS)
        if found:
            yield f"type_properties_json holds {', '.join(found)}"
        if el.config.get("type") == "AzureDatabricks" and props.get("authentication") != "MSI":
            yield f"the Databricks linked service's authentication is {show(props.get('authentication'))}; it must be MSI"
        return
    if el.type == "azurerm_data_factory_linked_service_key_vault":
        return  # reached with the factory's identity by construction
    if el.type == "azurerm_data_factory_linked_service_azure_databricks":
        if not el.config.get("msi_work_space_resource_id") and not el.config.get("msi_workspace_id"):
            yield "the Databricks linked service does not use the factory's managed identity (msi_workspace_id)"
        return
    if not (is_true(el.config.get("use_managed_identity")) or el.config.get("credential_name")):
        yield "use_managed_identity is not true and no credential_name is set"


def _keys(doc) -> Iterable[str]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield k
            yield from _keys(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _keys(v)


@rule("MLK-ADF-002", "error", "Data Factory has no public endpoint in a private environment", types=ADF,
      checkov=("CKV_AZURE_104",),
      why="Where the environment is private everything else is reached over private endpoints; a public factory "
          "endpoint (and integration runtimes outside a managed network) would be the way around them.",
      fix="Set public_network_enabled = false and managed_virtual_network_enabled = true, and reach storage, the "
          "source and Databricks through managed private endpoints.")
def adf_private(el: Element, ctx: Context) -> Iterable[str]:
    if not _private(ctx):
        return
    public = el.config.get("public_network_enabled")
    if not (is_false(public) or is_ref(public)):
        yield f"public_network_enabled is {show(public)}; this environment is private"
    managed = el.config.get("managed_virtual_network_enabled")
    if not (is_true(managed) or is_ref(managed)):
        yield f"managed_virtual_network_enabled is {show(managed)}; the integration runtime must run in it"


@rule("MLK-ADF-003", "error", "Data Factory reaches its source and the lake over TLS", types=LINKED,
      why="The copy moves the whole source table; an unencrypted connection exposes it on the network.",
      fix="Put Encrypt=True in the SQL connection string; use the https:// (dfs) endpoint of the data lake.")
def adf_tls(el: Element, ctx: Context) -> Iterable[str]:
    cs = el.config.get("connection_string")
    if el.type == "azurerm_data_factory_linked_service_azure_sql_database" and isinstance(cs, str) and not is_ref(cs):
        if not re.search(r"encrypt\s*=\s*(true|yes|mandatory|strict)", cs, re.I):
            yield "connection_string does not set Encrypt=True"
    url = el.config.get("url")
    if isinstance(url, str) and not is_ref(url) and not url.lower().startswith("https://"):
        yield f"url {show(url)} is not https"


@rule("MLK-ADF-004", "warning", "Pipelines retry their copies and have a failure path", types=PIPELINE,
      why="A transient source or network error should not lose a week's run; a failed run must end Failed with a "
          "message, not quietly succeed because its last activity was skipped.",
      fix="Give every Copy activity policy.retry >= 1 and a timeout, and add a Fail activity that runs when the "
          "job activity fails or is skipped (the generated pipelines do).")
def adf_retries(el: Element, ctx: Context) -> Iterable[str]:
    raw = el.config.get("activities_json")
    try:
        acts = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        acts = None
    if not isinstance(acts, list):
        return
    for a in acts:
        if a.get("type") == "Copy":
            policy = a.get("policy") or {}
            if not (isinstance(policy.get("retry"), int) and policy["retry"] >= 1):
                yield f"activity {a.get('name')!r} has no retry"
            if not policy.get("timeout"):
                yield f"activity {a.get('name')!r} has no timeout"
    fails = [a for a in acts if a.get("type") == "Fail"
             and any("Failed" in d.get("dependencyConditions", []) for d in a.get("dependsOn", []))]
    if not fails:
        yield "no Fail activity runs when an activity fails: the pipeline has no failure path"


# ----------------------------------------------------------------------------- Azure ML

@rule("MLK-AML-001", "error", "Azure ML workspace has no public endpoint in a private environment", types=MLW,
      checkov=("CKV_AZURE_144",),
      why="The workspace holds the registered models of the environment; in a private environment it is reached "
          "over private connectivity only.",
      fix="Set public_network_access_enabled = false and managed_network.isolation_mode = AllowOnlyApprovedOutbound.")
def aml_private(el: Element, ctx: Context) -> Iterable[str]:
    if not _private(ctx):
        return
    v = el.config.get("public_network_access_enabled")
    if not (is_false(v) or is_ref(v)):
        yield f"public_network_access_enabled is {show(v)}; this environment is private"
    mode = get(el.config, "managed_network.isolation_mode")
    if mode not in ("AllowOnlyApprovedOutbound",) and not is_ref(mode):
        yield f"managed_network.isolation_mode is {show(mode)}; outbound must be approved-only"


@rule("MLK-AML-002", "error", "Azure ML reaches its storage with its identity, not the account key", types=MLW,
      why="With AccessKey the workspace stores the account key and every datastore user gets key access; the "
          "platform's storage accounts have shared keys off.",
      fix='Set storage_account_access_type = "Identity".')
def aml_identity_storage(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("storage_account_access_type")
    if v != "Identity" and not is_ref(v):
        yield f"storage_account_access_type is {show(v)}; it must be Identity"


@rule("MLK-AML-003", "error", "Azure ML workspace is flagged high business impact", types=MLW, applies="prod_like",
      why="High business impact keeps Microsoft's diagnostic data collection minimal and encrypts local scratch "
          "disks; it can only be set when the workspace is created.",
      fix="Set high_business_impact = true (forces a new workspace if changed later).")
def aml_hbi(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("high_business_impact")
    if not (is_true(v) or is_ref(v)):
        yield f"high_business_impact is {show(v)}; prod-like workspaces need it"


# ----------------------------------------------------------------------------- Application Insights

@rule("MLK-APPI-001", "error", "Application Insights accepts Entra ID authenticated telemetry only", types=APPI,
      why="With local authentication on, anyone holding the connection string (it is in every client's "
          "configuration) can send telemetry into it.",
      fix="Set local_authentication_enabled = false and give senders Monitoring Metrics Publisher.")
def appi_local_auth(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("local_authentication_enabled")
    if not (is_false(v) or is_ref(v)):
        yield f"local_authentication_enabled is {show(v)}; telemetry must be sent with Entra ID"


@rule("MLK-APPI-002", "error", "Application Insights is workspace-based", types=APPI,
      why="Classic (non-workspace) Application Insights is retired; workspace-based keeps telemetry in Log "
          "Analytics with its retention and access control.",
      fix="Set workspace_id to the environment's Log Analytics workspace.")
def appi_workspace(el: Element, ctx: Context) -> Iterable[str]:
    if not el.config.get("workspace_id"):
        yield "workspace_id is not set: a classic Application Insights resource"


@rule("MLK-APPI-003", "error", "Application Insights cannot be queried from the internet in a private environment",
      types=APPI,
      why="Traces carry request details (groups, model versions); in a private environment reading them goes "
          "through Azure Monitor private link.",
      fix="Set internet_query_enabled = false.")
def appi_query(el: Element, ctx: Context) -> Iterable[str]:
    if not _private(ctx):
        return
    v = el.config.get("internet_query_enabled")
    if not (is_false(v) or is_ref(v)):
        yield f"internet_query_enabled is {show(v)}; this environment is private"
