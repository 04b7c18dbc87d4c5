"""The drift allowlist (known false diffs, kept as data) and what no rule may ever hide.

A rule matches one exact shape of a provider's known false diff:
  reordered  the same elements in another order (the diff engine proves it: same multiset,
             or the same named elements)
  case       the same text in other letter case (ARM ids are case-insensitive)
  default    the expected side has no value (or one of ``from``) and the actual side is exactly
             ``to``: the value the service fills in. ``${deployer_application_id}`` etc. in
             ``to`` come from the environment.
  any        any difference at that path (never for a protected attribute)

Protected: a change of identity (run_as, owners, principals), permission/grant or network
exposure. Only a rule that proves nothing changed there (reordered, case, or a default filled
in with the exact pinned value) may ignore such a row; ``any`` and ``default ... from`` rules
are refused at load time when their attribute can name one, and refused at match time when
the row touches one (the row is reported, with a note saying which rule was refused).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from envconfig.errors import UserError

from .plan_diff import empty

DEFAULT_ALLOWLIST = Path(__file__).with_name("drift_allowlist.yaml")
WHENS = ("reordered", "case", "default", "any")
_UNSET = object()

IDENTITY = {
    "run_as", "user_name", "service_principal_name", "group_name", "owner", "owner_id", "principal", "principal_id",
    "principal_name", "principal_type", "application_id", "client_id", "object_id", "tenant_id", "identity",
    "identity_ids", "single_user_name", "run_as_user_name", "creator_user_name", "admin_group_object_ids",
    "administrator_login", "admin_username", "kubelet_identity", "user_assigned_identity_id",
    "azure_active_directory_role_based_access_control", "*_principal_id", "*_object_id", "*_object_ids",
    "*identity_ids", "owner_*",
}
PERMISSION = {
    "access_control", "permission_level", "grant", "grants", "privileges", "role_definition_id",
    "role_definition_name", "access_policy", "key_permissions", "secret_permissions", "certificate_permissions",
    "storage_permissions", "entitlements", "allow_cluster_create", "allow_instance_pool_create",
    "databricks_sql_access", "workspace_access", "data_security_mode", "isolation_mode", "local_account_disabled",
    "shared_access_key_enabled", "local_authentication_enabled", "local_auth_enabled", "admin_enabled",
    "rbac_authorization_enabled", "enable_rbac_authorization", "role_based_access_control_enabled", "scope",
    "*_permissions", "*_privileges", "role_*",
}
NETWORK = {
    "public_network_access", "public_network_access_enabled", "public_network_enabled", "network_rules",
    "network_acls", "network_rule_set", "ip_rules", "ip_rule", "ip_range", "ip_ranges", "ip_addresses",
    "virtual_network_subnet_ids", "default_action", "bypass", "allow_nested_items_to_be_public",
    "allow_blob_public_access", "public_access", "container_access_type", "authorized_ip_ranges",
    "api_server_access_profile", "api_server_authorized_ip_ranges", "no_public_ip", "public_ip",
    "private_endpoint", "private_link_access", "private_cluster_enabled", "start_ip_address", "end_ip_address",
    "source_address_prefix", "source_address_prefixes", "destination_port_range", "destination_port_ranges",
    "access", "direction", "allowed_ips", "subnet_id", "https_only", "https_traffic_only_enabled",
    "min_tls_version", "minimum_tls_version", "list_type", "custom_parameters", "trusted_service_access_enabled",
    "*subnet_id", "*subnet_ids", "*public_network*", "*ip_range*", "*ip_rules", "*firewall*", "*private_endpoint*",
    "*public_access*", "*_cidr*", "*address_prefix*",
}
PROTECTED_TYPES = {
    "identity": ("databricks_service_principal", "databricks_user", "databricks_group", "azurerm_user_assigned_identity",
                 "azurerm_federated_identity_credential"),
    "permission": ("databricks_grants", "databricks_grant", "databricks_permissions", "databricks_secret_acl",
                   "databricks_group_member", "databricks_service_principal_role", "databricks_entitlements",
                   "databricks_access_control_rule_set", "azurerm_role_assignment", "azurerm_key_vault_access_policy"),
    "network": ("azurerm_network_security_rule", "azurerm_network_security_group", "azurerm_private_endpoint",
                "azurerm_storage_account_network_rules", "databricks_ip_access_list", "azurerm_*firewall_rule",
                "azurerm_public_ip", "azurerm_subnet*association"),
}
_NAMES = (("identity", IDENTITY), ("permission", PERMISSION), ("network", NETWORK))
# One exact-name set and one compiled pattern per category: protected() runs for every row.
_MATCHERS = [(c, {w for w in words if "*" not in w},
              re.compile("|".join(fnmatch.translate(w) for w in words if "*" in w))) for c, words in _NAMES]
# Free-form maps: a tag named "owner" grants nothing.
FREE_FORM = {"tags", "custom_tags", "labels", "annotations", "spark_conf", "spark_env_vars", "parameters",
             "base_parameters", "named_parameters", "default_tags"}
_SEGMENT = re.compile(r"\[[^\]]*\]")
_VAR = re.compile(r"\$\{([a-z_]+)\}")


def protected(resource_type: str, path: str, *values: Any) -> str:
    """identity | permission | network when the row touches one (by resource type, by any
    attribute name on its path, or by any key inside its values); else ''."""
    by_type = _type_category(resource_type)
    if by_type:
        return by_type
    names, free_form = [], False
    for s in _SEGMENT.sub(".", path).split("."):
        if s in FREE_FORM:
            free_form = True
            break
        names += [s] if s else []
    for v in () if free_form else values:
        names += list(_keys(v))
    found = {_category(n) for n in names} - {""}
    return next((c for c, _, _ in _MATCHERS if c in found), "")


@lru_cache(maxsize=1024)
def _type_category(resource_type: str) -> str:
    return next((c for c, types in PROTECTED_TYPES.items() if any(fnmatchcase(resource_type, t) for t in types)), "")


@lru_cache(maxsize=8192)
def _category(name: str) -> str:
    return next((c for c, exact, pattern in _MATCHERS if name in exact or pattern.match(name)), "")


@lru_cache(maxsize=8192)
def _fnmatch(text: str, pattern: str) -> bool:
    return fnmatchcase(text, pattern)


def _keys(v: Any):
    if isinstance(v, dict):
        for k, x in v.items():
            yield k
            if k not in FREE_FORM:
                yield from _keys(x)
    elif isinstance(v, list):
        for x in v:
            yield from _keys(x)


@dataclass(frozen=True)
class Rule:
    id: str
    reason: str
    resource_type: tuple[str, ...] = ("*",)
    attribute: tuple[str, ...] = ("*",)
    when: str = "any"
    to: Any = _UNSET
    from_: tuple[Any, ...] = ()
    service: str = "*"
    type: str = "*"
    name: str = "*"
    source: str = "*"

    @property
    def proves_no_change(self) -> bool:
        """May this rule ignore a row that touches identity, permission or network exposure?"""
        return self.when in ("reordered", "case") or (self.when == "default" and not self.from_)

    def matches(self, resource_type: str, path: str, change: str, expected: Any, actual: Any) -> bool:
        if not any(_fnmatch(resource_type, g) for g in self.resource_type):
            return False
        if not any(_glob(path, g) for g in self.attribute):
            return False
        if self.when == "reordered":
            return change == "reordered"
        if self.when == "case":
            return (change == "changed" and isinstance(expected, str) and isinstance(actual, str)
                    and expected.lower() == actual.lower())
        if self.when == "default":
            from_ok = empty(expected) or any(_prune(expected) == _prune(f) for f in self.from_)
            return change in ("added", "changed") and from_ok and _prune(actual) == _prune(self.to)
        return True


def _glob(path: str, pattern: str) -> bool:
    """fnmatch with [ and ] taken literally: they name list elements in attribute paths."""
    return _fnmatch(path, pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]"))


# Built in: differences that carry no meaning, listed as ignored like the rules' matches.
JSON_EQUIVALENT = Rule("json-equivalent", "The same JSON document on both sides: only whitespace or key order "
                                          "differ (the API re-serialized it).")
NULL_OR_EMPTY = Rule("null-or-empty", "Null on one side, an empty value on the other: nothing is set either way.")
BUILTIN = {"reformatted": JSON_EQUIVALENT, "null-or-empty": NULL_OR_EMPTY}


def _prune(v: Any) -> Any:
    """Drop empty fields and unwrap one-element lists: how a provider writes a filled-in block."""
    if isinstance(v, dict):
        return {k: _prune(x) for k, x in sorted(v.items()) if not empty(x)}
    if isinstance(v, list):
        items = [_prune(x) for x in v]
        return items[0] if len(items) == 1 else items
    return v


@dataclass
class Allowlist:
    attributes: list[Rule] = field(default_factory=list)
    unmanaged: list[Rule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def match(self, resource_type: str, path: str, change: str, expected: Any, actual: Any,
              category: str) -> tuple[Rule | None, str]:
        """(the rule that ignores this row, or None; a note when a matching rule was refused)."""
        builtin = BUILTIN.get(change)
        if builtin is not None:
            return builtin, ""
        for r in self.attributes:
            if r.matches(resource_type, path, change, expected, actual):
                if category and not r.proves_no_change:
                    return None, f"not ignored by {r.id}: {category} changes are never noise"
                return r, ""
        return None, ""

    def match_object(self, o) -> Rule | None:
        for r in self.unmanaged:
            if (fnmatchcase(o.service, r.service) and fnmatchcase(o.type, r.type) and fnmatchcase(o.name, r.name)
                    and fnmatchcase(o.source or "", r.source)):
                return r
        return None


def load_allowlist(path: Path = DEFAULT_ALLOWLIST, variables: dict[str, str | None] | None = None) -> Allowlist:
    """Read and check the allowlist. ``variables`` fill ``${name}`` in ``to`` values; a rule that
    needs a variable this run does not know is left out (and the report says so)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"{path}: cannot read the drift allowlist ({e})", exit_code=1) from None
    if not isinstance(data, dict) or set(data) - {"attributes", "unmanaged"}:
        raise UserError(f"{path}: the allowlist has two sections, attributes and unmanaged", exit_code=1)
    out, seen = Allowlist(), set()
    for section in ("attributes", "unmanaged"):
        for i, entry in enumerate(data.get(section) or ()):
            where = f"{path}: {section}[{i}]"
            rule = _rule(entry, where, section)
            if rule.id in seen:
                raise UserError(f"{where}: id {rule.id!r} is used twice", exit_code=1)
            seen.add(rule.id)
            missing = sorted(set(_VAR.findall(repr(rule.to))) - {k for k, v in (variables or {}).items() if v})
            if missing:
                out.notes.append(f"allowlist rule {rule.id} not applied: this run does not know "
                                 f"{', '.join('${' + m + '}' for m in missing)}")
                continue
            if rule.to is not _UNSET:
                rule = Rule(**{**vars(rule), "to": _fill(rule.to, variables or {})})
            getattr(out, section).append(rule)
    return out


def _rule(entry: Any, where: str, section: str) -> Rule:
    def bad(msg: str) -> UserError:
        return UserError(f"{where}: {msg}", exit_code=1)

    if not isinstance(entry, dict) or not entry.get("id") or len(str(entry.get("reason", ""))) < 10:
        raise bad("every entry needs an 'id' and a 'reason' (10+ characters)")
    entry = dict(entry)
    allowed = ({"id", "reason", "resource_type", "attribute", "when", "to", "from"} if section == "attributes"
               else {"id", "reason", "service", "type", "name", "source"})
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise bad(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    if section == "unmanaged":
        return Rule(**{k: str(v) for k, v in entry.items()})
    when = entry.get("when", "any")
    if when not in WHENS:
        raise bad(f"when must be one of {', '.join(WHENS)}, not {when!r}")
    if when == "default" and "to" not in entry:
        raise bad("a 'default' rule needs 'to': the exact value the service fills in")
    if when != "default" and ("to" in entry or "from" in entry):
        raise bad("'to' and 'from' belong to 'default' rules")
    from_ = entry.pop("from", [])
    if not isinstance(from_, list):
        raise bad("'from' is a list of values")
    globs = {k: tuple(entry[k]) if isinstance(entry.get(k), list) else (str(entry.get(k, "*")),)
             for k in ("resource_type", "attribute")}
    rule = Rule(id=str(entry["id"]), reason=str(entry["reason"]), when=when, to=entry.get("to", _UNSET),
                from_=tuple(from_), **globs)
    if not rule.proves_no_change:
        names = [n for _, words in _NAMES for n in words]
        last = [_SEGMENT.sub("", g).split(".")[-1] for g in rule.attribute]
        hit = sorted({n for seg in last for n in names if fnmatchcase(n, seg) or fnmatchcase(seg, n)})
        hit = hit or sorted({t for g in rule.resource_type for ts in PROTECTED_TYPES.values() for t in ts
                             if fnmatchcase(t, g)})
        if hit:
            raise bad(f"a rule with when: {when}{' and from' if from_ else ''} may not cover identity, permission "
                      f"or network attributes ({', '.join(hit[:5])}): use reordered, case or an exact default")
    return rule


def _fill(v: Any, variables: dict[str, str | None]) -> Any:
    if isinstance(v, str):
        return _VAR.sub(lambda m: str(variables[m.group(1)]), v)
    if isinstance(v, dict):
        return {k: _fill(x, variables) for k, x in v.items()}
    if isinstance(v, list):
        return [_fill(x, variables) for x in v]
    return v
