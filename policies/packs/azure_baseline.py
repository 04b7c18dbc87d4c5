"""azure-baseline: storage, Key Vault, ACR, AKS, Event Hubs and the Databricks workspace.

Absent attributes take the azurerm 5.x provider default (e.g. HTTPS-only is on unless turned
off); where a default changed between provider majors the rule asks for the explicit value.
"""

from __future__ import annotations

from typing import Iterable

from envconfig.vault_permissions import CERT_PERMS, KEY_PERMS, SECRET_PERMS

from ..model import Context, Element
from ..values import blocks, get, has, is_false, is_ref, is_true, show
from .pack import Pack

PACK = Pack("azure-baseline")
rule = PACK.rule

ST = ("azurerm_storage_account",)
KV = ("azurerm_key_vault",)
KV_POLICY = ("azurerm_key_vault_access_policy", "azurerm_key_vault")
ACR = ("azurerm_container_registry",)
AKS = ("azurerm_kubernetes_cluster",)
EHNS = ("azurerm_eventhub_namespace",)
DBW = ("azurerm_databricks_workspace",)


# ----------------------------------------------------------------------------- storage

@rule("MLK-ST-001", "error", "Storage accepts HTTPS only", types=ST, checkov=("CKV_AZURE_3",),
      why="Plain HTTP exposes data and SAS tokens in transit.",
      fix="Leave https_traffic_only_enabled unset or set it to true.")
def st_https(el: Element, ctx: Context) -> Iterable[str]:
    if is_false(el.config.get("https_traffic_only_enabled")):
        yield "https_traffic_only_enabled is false: the account accepts plain HTTP"


@rule("MLK-ST-002", "error", "Storage requires TLS 1.2 or newer", types=ST, checkov=("CKV_AZURE_44",),
      why="TLS 1.0/1.1 have known weaknesses and are being retired by Azure.",
      fix='Set min_tls_version = "TLS1_2".')
def st_tls(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("min_tls_version")
    if v is not None and not is_ref(v) and v not in ("TLS1_2", "TLS1_3"):
        yield f"min_tls_version is {show(v)}; it must be TLS1_2 or newer"


@rule("MLK-ST-003", "error", "No anonymous public blob access", types=ST,
      checkov=("CKV_AZURE_190", "CKV2_AZURE_47"),
      why="A container switched to public would serve training data or models to anyone on the internet.",
      fix="Set allow_nested_items_to_be_public = false.")
def st_public_blobs(el: Element, ctx: Context) -> Iterable[str]:
    if is_true(el.config.get("allow_nested_items_to_be_public")):
        yield "allow_nested_items_to_be_public is true: containers can be made publicly readable"


@rule("MLK-ST-004", "error", "Storage uses infrastructure (double) encryption", types=ST,
      why="A second encryption layer with a separate key protects data if one algorithm or key is compromised; "
          "it can only be chosen when the account is created.",
      fix="Set infrastructure_encryption_enabled = true (forces a new account if changed later).")
def st_infra_encryption(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("infrastructure_encryption_enabled")
    if not (is_true(v) or is_ref(v)):
        yield f"infrastructure_encryption_enabled is {show(v)}; it must be true"


@rule("MLK-ST-005", "error", "Blob soft delete is on", types=ST, checkov=("CKV2_AZURE_38",),
      why="Without soft delete an overwritten or deleted blob (a model, a Delta log file) is gone for good.",
      fix="Set blob_properties.delete_retention_policy.days (1-365).")
def st_blob_soft_delete(el: Element, ctx: Context) -> Iterable[str]:
    yield from _soft_delete(el, "delete_retention_policy", "blob", "deleted blobs")


def _soft_delete(el: Element, policy: str, what: str, lost: str) -> Iterable[str]:
    days = get(el.config, f"blob_properties.{policy}.days")
    if days is None and not has(el.config, f"blob_properties.{policy}"):
        yield f"blob_properties.{policy} is not set: {lost} cannot be recovered"
    elif days is not None and not is_ref(days) and days < 1:
        yield f"{what} soft delete keeps {days} days; it must keep at least 1"


@rule("MLK-ST-006", "error", "Container soft delete is on", types=ST, checkov=("CKV2_AZURE_38",),
      why="Deleting a container deletes every table and model in it at once.",
      fix="Set blob_properties.container_delete_retention_policy.days (1-365).")
def st_container_soft_delete(el: Element, ctx: Context) -> Iterable[str]:
    yield from _soft_delete(el, "container_delete_retention_policy", "container", "deleted containers")


# ----------------------------------------------------------------------------- key vault

@rule("MLK-KV-001", "error", "Key Vault soft delete keeps deleted secrets long enough", types=KV,
      checkov=("CKV_AZURE_111", "CKV_AZURE_42"),
      why="Soft delete is the only way back from a deleted secret; prod-like vaults keep the full 90 days.",
      fix="Set soft_delete_retention_days to at least 7 (90 in prod-like environments).")
def kv_soft_delete(el: Element, ctx: Context) -> Iterable[str]:
    days = el.config.get("soft_delete_retention_days", 90)
    need = 90 if ctx.cfg.prod_like else 7
    if not is_ref(days) and days < need:
        yield f"soft_delete_retention_days is {days}; this environment needs at least {need}"


@rule("MLK-KV-002", "error", "Key Vault purge protection is on", types=KV, applies="prod_like",
      checkov=("CKV_AZURE_110",),
      why="Without purge protection a deleted vault or secret can be purged at once, bypassing soft delete.",
      fix="Set purge_protection_enabled = true (it cannot be turned off again).")
def kv_purge_protection(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("purge_protection_enabled")
    if not (is_true(v) or is_ref(v)):
        yield f"purge_protection_enabled is {show(v)}; prod-like vaults must enable it"


@rule("MLK-KV-003", "error", "Key Vault network default action is Deny", types=KV, applies="prod_like",
      checkov=("CKV_AZURE_109",),
      why="A vault reachable from any network is one leaked credential away from exfiltration.",
      fix='Set network_acls { default_action = "Deny", bypass = "AzureServices" } and list allowed IP ranges.')
def kv_network(el: Element, ctx: Context) -> Iterable[str]:
    action = get(el.config, "network_acls.default_action")
    if action is None:
        yield "network_acls is not set: the vault accepts traffic from every network"
    elif not is_ref(action) and action != "Deny":
        yield f"network_acls.default_action is {show(action)}; prod-like vaults must use Deny"


def _access_policies(el: Element) -> list[dict]:
    if el.type == "azurerm_key_vault":
        return blocks(el.config, "access_policy")
    return [el.config]


_ALL = {"secret_permissions": SECRET_PERMS, "key_permissions": KEY_PERMS, "certificate_permissions": CERT_PERMS}


@rule("MLK-KV-004", "error", "No access policy grants every permission", types=KV_POLICY,
      why="An all-permissions grant turns any compromise of that identity into full control of the vault.",
      fix="Grant only what the principal uses (workloads: get/list on secrets).")
def kv_all_permissions(el: Element, ctx: Context) -> Iterable[str]:
    for pol in _access_policies(el):
        for attr, every in _ALL.items():
            granted = pol.get(attr) or []
            if is_ref(granted) or not isinstance(granted, list):
                continue
            if {str(p).lower() for p in granted} >= set(every):
                yield f"{attr} grants all {len(every)} permissions to object {show(pol.get('object_id'))}"


@rule("MLK-KV-005", "error", "Workloads cannot purge Key Vault objects", types=KV_POLICY,
      why="Purge is irreversible deletion; a workload identity never needs it, and only the deployer may hold it.",
      fix="Remove 'Purge' from the permissions of every principal except the deployer.")
def kv_purge(el: Element, ctx: Context) -> Iterable[str]:
    deployer = ctx.cfg.principals.deployer if ctx.cfg.principals else None
    for pol in _access_policies(el):
        oid = pol.get("object_id")
        if oid == deployer and not is_ref(oid):
            continue
        for attr in _ALL:
            granted = pol.get(attr) or []
            if isinstance(granted, list) and not is_ref(granted) and "purge" in {str(p).lower() for p in granted}:
                yield f"{attr} grants Purge to {show(oid)}, which is not the deployer"


# ----------------------------------------------------------------------------- container registry

@rule("MLK-CR-001", "error", "Container registry admin user is off", types=ACR, checkov=("CKV_AZURE_137",),
      why="The admin user is a shared static password with push rights; pulls should use managed identities.",
      fix="Set admin_enabled = false and grant AcrPull/AcrPush to identities.")
def cr_admin(el: Element, ctx: Context) -> Iterable[str]:
    if is_true(el.config.get("admin_enabled")):
        yield "admin_enabled is true: the registry has a shared admin password"


@rule("MLK-CR-002", "error", "Container registry is not publicly reachable", types=ACR, applies="prod_like",
      checkov=("CKV_AZURE_139",),
      why="Prod images should only be pullable from the platform's networks.",
      fix="Set public_network_access_enabled = false (Premium SKU) and reach it over private endpoints.")
def cr_public(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("public_network_access_enabled")
    if not (is_false(v) or is_ref(v)):
        yield f"public_network_access_enabled is {show(v)}; prod-like registries must disable it"


# ----------------------------------------------------------------------------- AKS

@rule("MLK-AKS-001", "error", "AKS uses Kubernetes RBAC with Entra ID", types=AKS, checkov=("CKV_AZURE_5",),
      why="Entra ID integration ties cluster access to corporate identities, groups and conditional access.",
      fix="Keep role_based_access_control_enabled = true and add an "
          "azure_active_directory_role_based_access_control block (azure_rbac_enabled, admin_group_object_ids).")
def aks_rbac(el: Element, ctx: Context) -> Iterable[str]:
    if is_false(el.config.get("role_based_access_control_enabled")):
        yield "role_based_access_control_enabled is false"
    if not has(el.config, "azure_active_directory_role_based_access_control"):
        yield "azure_active_directory_role_based_access_control is not set: no Entra ID integration"


@rule("MLK-AKS-002", "error", "AKS local accounts are disabled", types=AKS, checkov=("CKV_AZURE_141",),
      why="The local cluster-admin certificate bypasses Entra ID and cannot be revoked per user.",
      fix="Set local_account_disabled = true.")
def aks_local_accounts(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("local_account_disabled")
    if not (is_true(v) or is_ref(v)):
        yield f"local_account_disabled is {show(v)}; it must be true"


@rule("MLK-AKS-003", "warning", "AKS default node pool autoscales", types=AKS,
      why="A fixed-size pool either wastes money or runs out of capacity under scoring load.",
      fix="Set default_node_pool.auto_scaling_enabled = true with min_count and max_count.")
def aks_autoscaling(el: Element, ctx: Context) -> Iterable[str]:
    pool = get(el.config, "default_node_pool") or {}
    if not (is_true(pool.get("auto_scaling_enabled")) or is_ref(pool.get("auto_scaling_enabled"))):
        yield "default_node_pool.auto_scaling_enabled is not true"
    elif pool.get("min_count") is None or pool.get("max_count") is None:
        yield "default_node_pool autoscales but min_count/max_count are not both set"


@rule("MLK-AKS-004", "error", "AKS enforces a network policy", types=AKS, checkov=("CKV_AZURE_7",),
      why="Without a network policy every pod can reach every other pod; one compromised pod reaches all.",
      fix='Set network_profile.network_policy (e.g. "cilium" or "azure").')
def aks_network_policy(el: Element, ctx: Context) -> Iterable[str]:
    v = get(el.config, "network_profile.network_policy")
    if v is None or (not is_ref(v) and str(v).lower() == "none"):
        yield "network_profile.network_policy is not set"


@rule("MLK-AKS-005", "error", "AKS API server is private or IP-restricted", types=AKS, applies="prod_like",
      checkov=("CKV_AZURE_6",),
      why="A Kubernetes API open to the internet is a standing target for credential stuffing and CVEs.",
      fix="Set private_cluster_enabled = true or api_server_access_profile.authorized_ip_ranges.")
def aks_api_access(el: Element, ctx: Context) -> Iterable[str]:
    if is_true(el.config.get("private_cluster_enabled")) or is_ref(el.config.get("private_cluster_enabled")):
        return
    ranges = get(el.config, "api_server_access_profile.authorized_ip_ranges")
    if is_ref(ranges):
        return
    if not ranges:
        yield "the API server is public: neither private_cluster_enabled nor authorized_ip_ranges is set"
    elif any(str(r) in ("0.0.0.0/0", "*", "Internet") for r in ranges):
        yield f"authorized_ip_ranges {show(ranges)} allows the whole internet"


# ----------------------------------------------------------------------------- Event Hubs

@rule("MLK-EH-001", "error", "Event Hubs namespace requires TLS 1.2", types=EHNS, checkov=("CKV_AZURE_223",),
      why="Older TLS versions are weak and being retired.", fix='Set minimum_tls_version = "1.2".')
def eh_tls(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("minimum_tls_version")
    if v is not None and not is_ref(v) and str(v) != "1.2":
        yield f"minimum_tls_version is {show(v)}; it must be 1.2"


@rule("MLK-EH-002", "error", "Event Hubs local (SAS key) auth is off", types=EHNS,
      why="The platform's producers and consumers use managed identities; SAS keys are long-lived shared "
          "secrets that would only add a way in.",
      fix="Set local_authentication_enabled = false. If a client truly needs SAS, suppress with the reason.")
def eh_local_auth(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("local_authentication_enabled")
    if not (is_false(v) or is_ref(v)):
        yield f"local_authentication_enabled is {show(v)}; SAS keys stay usable next to the identities"


# ----------------------------------------------------------------------------- Databricks workspace

@rule("MLK-DBW-001", "error", "Databricks workspace is Premium", types=DBW,
      why="Standard lacks cluster policies, Key Vault-backed secret ACLs and audit logs the platform relies on.",
      fix='Set sku = "premium".')
def dbw_premium(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("sku")
    if not is_ref(v) and v != "premium":
        yield f"sku is {show(v)}; the platform needs premium"


@rule("MLK-DBW-002", "error", "Databricks clusters get no public IPs", types=DBW,
      why="Secure cluster connectivity keeps worker nodes off the internet.",
      fix="Set custom_parameters.no_public_ip = true (explicitly: the provider default changed between majors).")
def dbw_no_public_ip(el: Element, ctx: Context) -> Iterable[str]:
    v = get(el.config, "custom_parameters.no_public_ip")
    if not (is_true(v) or is_ref(v)):
        yield f"custom_parameters.no_public_ip is {show(v)}; it must be true"


@rule("MLK-DBW-003", "error", "Databricks workspace is not publicly accessible", types=DBW, applies="prod_like",
      checkov=("CKV_AZURE_158",),
      why="In prod the workspace UI and API should only be reachable through private connectivity.",
      fix="Set public_network_access_enabled = false (with network_security_group_rules_required).")
def dbw_public(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("public_network_access_enabled")
    if not (is_false(v) or is_ref(v)):
        yield f"public_network_access_enabled is {show(v)}; prod-like workspaces must disable it"
