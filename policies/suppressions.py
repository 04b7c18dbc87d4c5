"""Suppressions: data with a reason, from the environment file or attached to a construct.

A suppression waives one rule (ours, ``MLK-...``, or checkov's, ``CKV_...``) for the
resources its target matches. Suppressing one of our rules also waives the checkov checks
mapped to it (``Rule.checkov``) on the same resources, so one reason covers both tools.

Targets: a construct path or Terraform address, glob allowed (``prod-platform/storage/*``,
``azurerm_storage_account.*``); ``*`` is every resource of the environment. A suppression on
a construct applies to that construct and everything under it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from constructs import IConstruct

if TYPE_CHECKING:
    from .model import Finding, Rule

METADATA_TYPE = "mlkit:suppress"
MIN_REASON = 10

# Suppressions by construct, kept on the Python side as well as in the construct's metadata:
# the aspect visits every construct, and reading metadata back through jsii costs a round trip
# to the Node runtime per construct (measured: ~0.5 s of a 3-environment synth).
_ON_CONSTRUCT: "weakref.WeakKeyDictionary[IConstruct, list[dict]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ActiveSuppression:
    rule: str
    target: str  # glob over construct path / address; for construct suppressions the construct path
    reason: str
    expires: dt.date | None
    origin: str  # "environments/prod.yaml" or "construct"
    env: str
    on_construct: bool = False

    def key(self) -> tuple:
        return (self.env, self.origin, self.rule, self.target)

    @property
    def where(self) -> str:
        return f"on construct {self.target}" if self.on_construct else f"in {self.origin} (target {self.target!r})"

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and self.expires < today

    def valid_reason(self) -> bool:
        return len((self.reason or "").strip()) >= MIN_REASON

    def covers(self, finding: "Finding", rules: dict[str, "Rule"]) -> bool:
        if finding.env != self.env:
            return False
        if self.rule != finding.rule_id:
            mapped = rules.get(self.rule)
            if not (mapped and finding.source == "checkov" and finding.rule_id in mapped.checkov):
                return False
        if self.on_construct:
            return bool(finding.path) and (finding.path == self.target or finding.path.startswith(self.target + "/"))
        if self.target == "*":
            return True
        return any(c and fnmatch.fnmatchcase(c, self.target)
                   for c in (finding.path, finding.address, f"{finding.stack}/{finding.address}"))


def suppress(construct: IConstruct, rule_id: str, reason: str, expires: str | dt.date | None = None) -> None:
    """Waive ``rule_id`` for ``construct`` and its children, saying why (cdk-nag style).

    The reason is required; a missing or too-short reason, or a past expiry date, is reported as an
    error finding when the policies run (the suppression then does not apply).
    """
    if not isinstance(rule_id, str) or not rule_id:
        raise TypeError("suppress(): rule_id must be a rule id such as 'MLK-ST-003' or 'CKV_AZURE_59'")
    if isinstance(expires, dt.date):
        expires = expires.isoformat()
    data = {"rule": rule_id, "reason": reason or "", "expires": expires or ""}
    construct.node.add_metadata(METADATA_TYPE, data)  # visible in the construct tree, for tools
    _ON_CONSTRUCT.setdefault(construct, []).append(data)


def from_construct(node: IConstruct, env: str, path: str | None = None) -> list[ActiveSuppression]:
    entries = _ON_CONSTRUCT.get(node, ())
    if entries and path is None:
        path = node.node.path
    return [ActiveSuppression(rule=str(data.get("rule", "")), target=path, reason=str(data.get("reason") or ""),
                              expires=_date(data.get("expires")), origin="construct", env=env, on_construct=True)
            for data in entries]


def from_config(cfg, environments_dir: str | None = None) -> list[ActiveSuppression]:
    origin = f"{environments_dir}/{cfg.name}.yaml" if environments_dir else f"{cfg.name}.yaml"
    return [ActiveSuppression(rule=s.rule, target=s.target, reason=s.reason, expires=_date(s.expires),
                              origin=origin, env=cfg.name) for s in cfg.suppressions]


def _date(value) -> dt.date | None:
    if not value:
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return dt.date.min  # unparseable expiry: treat as expired so it is reported, never silently kept
