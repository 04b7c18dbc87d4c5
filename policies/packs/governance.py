"""governance: mandatory tags, names from the naming module, no plaintext secrets, no PATs in providers."""

from __future__ import annotations

import re
from typing import Callable, Iterable

from envconfig.naming import MANDATORY_TAGS, Names

from .. import secrets
from ..model import Context, Element
from ..values import get, is_ref, show
from .pack import Pack

PACK = Pack("governance")
rule = PACK.rule

# The attribute that carries a resource's tags, for every type the stacks use that can be tagged.
TAG_ATTRIBUTE = {
    "databricks_instance_pool": "custom_tags",  # propagated to the pool's Azure VMs
    "databricks_job": "tags",
    "databricks_mlflow_experiment": "tags",
}


def tag_attribute(el: Element) -> str | None:
    if el.type in TAG_ATTRIBUTE:
        return TAG_ATTRIBUTE[el.type]
    return "tags" if el.taggable else None


def _tags(value) -> dict | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):  # [{key, value}] blocks (MLflow experiments)
        return {t.get("key"): t.get("value") for t in value if isinstance(t, dict)}
    return None


@rule("MLK-GOV-001", "error", "Taggable resources carry the mandatory tags",
      why="Cost allocation, ownership and clean-up all key on owner, cost-center and environment.",
      fix="Pass envconfig.naming.tags_for(cfg.tags, cfg.name) as the resource's tags.")
def mandatory_tags(el: Element, ctx: Context) -> Iterable[str]:
    attr = tag_attribute(el)
    if attr is None:
        return
    value = el.config.get(attr)
    if is_ref(value):
        return
    tags = _tags(value) or {}
    missing = [t for t in MANDATORY_TAGS if not tags.get(t)]
    if missing:
        yield f"{attr} lacks {', '.join(missing)}"


def _pattern(fn: Callable[[str], str]) -> re.Pattern[str]:
    """A parametrised name (names.job(x)) as a regex over any x."""
    head, tail = fn("\0").split("\0")
    return re.compile(re.escape(head) + r"[A-Za-z0-9_.-]+" + re.escape(tail))


def expected_names(n: Names) -> dict[str, dict[str, object]]:
    """type -> attribute -> the name (str), the allowed names (tuple) or a pattern."""
    return {
        "azurerm_resource_group": {"name": n.resource_group},
        "azurerm_storage_account": {"name": n.storage_account},
        "azurerm_storage_container": {"name": tuple(n.CONTAINERS)},
        "azurerm_key_vault": {"name": n.key_vault},
        "azurerm_container_registry": {"name": n.container_registry},
        "azurerm_kubernetes_cluster": {"name": n.kubernetes_cluster, "dns_prefix": n.kubernetes_dns_prefix},
        "azurerm_eventhub_namespace": {"name": n.eventhub_namespace},
        "azurerm_eventhub": {"name": n.eventhub_inference_logs},
        "azurerm_eventhub_consumer_group": {"name": n.consumer_group_monitoring},
        "azurerm_databricks_workspace": {"name": n.databricks_workspace,
                                         "managed_resource_group_name": n.databricks_managed_resource_group},
        "azurerm_user_assigned_identity": {"name": _pattern(n.managed_identity)},
        "azurerm_federated_identity_credential": {"name": _pattern(n.federated_credential)},
        "azurerm_log_analytics_workspace": {"name": n.log_analytics_workspace},
        "azurerm_virtual_network": {"name": n.virtual_network},
        "azurerm_subnet": {"name": _pattern(n.subnet)},
        "azurerm_network_security_group": {"name": _pattern(n.network_security_group)},
        "azurerm_private_endpoint": {"name": _pattern(n.private_endpoint)},
        "databricks_instance_pool": {"instance_pool_name": _pattern(n.instance_pool)},
        "databricks_cluster_policy": {"name": n.cluster_policy},
        "databricks_secret_scope": {"name": n.secret_scope},
        "databricks_job": {"name": _pattern(n.job)},
        "databricks_mlflow_experiment": {"name": _pattern(n.experiment)},
        "azurerm_databricks_access_connector": {"name": n.databricks_access_connector},
        "databricks_storage_credential": {"name": n.storage_credential},
        "databricks_external_location": {"name": tuple(n.external_location(c) for c in n.CONTAINERS)},
        "databricks_service_principal": {"display_name": n.scoring_principal},
    }


@rule("MLK-GOV-002", "error", "Names come from the naming module",
      why="Deploy, drift detection and the jobs find resources by their names; a hand-typed name breaks them.",
      fix="Use the name from envconfig.naming (cfg.names) instead of a literal.")
def names_from_module(el: Element, ctx: Context) -> Iterable[str]:
    for attr, want in expected_names(ctx.names).get(el.type, {}).items():
        got = el.config.get(attr)
        if got is None or is_ref(got):
            continue
        if isinstance(want, str) and got != want:
            yield f"{attr} is {show(got)}; the naming module says {show(want)}"
        elif isinstance(want, tuple) and got not in want:
            yield f"{attr} is {show(got)}; the naming module allows {', '.join(want)}"
        elif isinstance(want, re.Pattern) and not want.fullmatch(str(got)):
            yield f"{attr} is {show(got)}; the naming module's pattern is {want.pattern}"


@rule("MLK-GOV-003", "error", "No plaintext secrets in the configuration",
      kinds=("resource", "data", "provider", "output", "variable", "locals", "other"),
      why="Synthesized JSON lands in CI logs, artifacts and Terraform state; a secret in it is a leaked secret.",
      fix="Put the secret in Key Vault (or a CI secret) and reference it; never write the value into a construct.")
def no_plaintext_secrets(el: Element, ctx: Context) -> Iterable[str]:
    for where, what in secrets.scan(el.config):
        yield f"{where} holds {what}"


@rule("MLK-GOV-004", "error", "No personal access tokens in provider config", kinds=("provider",),
      why="A PAT is a long-lived personal credential: it outlives its owner's access and cannot be scoped.",
      fix="Authenticate the databricks provider with Azure identities (azure_workspace_resource_id + OIDC/MSI).")
def no_pat_in_provider(el: Element, ctx: Context) -> Iterable[str]:
    for attr in ("token", "password"):
        if get(el.config, attr) is not None:
            yield f"provider {el.type} sets {attr} (by {'reference' if is_ref(el.config[attr]) else 'literal'})"
