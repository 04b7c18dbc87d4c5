"""Drift report: what changed outside Terraform, what an apply would change, and what
exists in the cloud without being in Terraform state.

Inputs are plan JSON documents (``terraform show -json`` of a ``-refresh-only`` plan and of
a normal plan) and cloud inventories; output is a report in Markdown and JSON. Exit codes:
0 no drift, 2 drift, 1 error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from ..console import UserError
from .inventory import CloudObject
from .plan import action_of, attribute_diffs

DEFAULT_ALLOWLIST = Path(__file__).with_name("drift_allowlist.yaml")
RESOURCE = "(resource)"


@dataclass(frozen=True)
class Rule:
    id: str
    reason: str
    resource_type: str = "*"
    attribute: str = "*"
    when: str = "any"
    service: str = "*"
    type: str = "*"
    name: str = "*"
    source: str = "*"


@dataclass
class Allowlist:
    attributes: list[Rule] = field(default_factory=list)
    unmanaged: list[Rule] = field(default_factory=list)

    def for_type(self, tf_type: str) -> list[Rule]:
        return [r for r in self.attributes if fnmatchcase(tf_type, r.resource_type)]

    def match_object(self, o: CloudObject) -> Rule | None:
        for r in self.unmanaged:
            if (fnmatchcase(o.service, r.service) and fnmatchcase(o.type, r.type) and fnmatchcase(o.name, r.name)
                    and fnmatchcase(o.source or "", r.source)):
                return r
        return None


def load_allowlist(path: Path = DEFAULT_ALLOWLIST) -> Allowlist:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"{path}: cannot read the drift allowlist ({e})", exit_code=1) from None
    out = Allowlist()
    for section in ("attributes", "unmanaged"):
        for i, entry in enumerate(data.get(section) or ()):
            where = f"{path}: {section}[{i}]"
            if not isinstance(entry, dict) or not entry.get("id") or len(str(entry.get("reason", ""))) < 10:
                raise UserError(f"{where}: every entry needs an 'id' and a 'reason' (10+ characters)", exit_code=1)
            try:
                rule = Rule(**entry)
            except TypeError as e:
                raise UserError(f"{where}: {e}", exit_code=1) from None
            if rule.when not in ("any", "reordered", "one_side_empty"):
                raise UserError(f"{where}: when must be any, reordered or one_side_empty, not {rule.when!r}",
                                exit_code=1)
            getattr(out, section).append(rule)
    return out


@dataclass
class DriftItem:
    stack: str
    address: str
    kind: str       # drift (changed outside Terraform) | pending (apply would change) | unmanaged
    action: str     # update | delete | create | replace | unmanaged
    attribute: str
    expected: Any
    actual: Any
    ignored_by: str = ""
    reason: str = ""
    reverted_by_apply: bool = False


def _empty(v: Any) -> bool:
    return v is None or v == [] or v == {} or v == ""


def _canon(items: Any) -> list[str]:
    return sorted(json.dumps(i, sort_keys=True) for i in items)


def _verdict(rule: Rule, before: Any, after: Any) -> bool:
    if rule.when == "any":
        return True
    if rule.when == "one_side_empty":
        return _empty(before) != _empty(after)
    return isinstance(before, list) and isinstance(after, list) and _canon(before) == _canon(after)


def _items(stack: str, rc: dict, kind: str, allow: Allowlist) -> list[DriftItem]:
    change, address, action = rc["change"], rc["address"], action_of(rc["change"]["actions"])
    rules = allow.for_type(rc["type"])
    # drift: state said `before`, the cloud says `after`. pending: the code wants `after`, the cloud has `before`.
    flip = kind == "pending"

    def item(attr: str, before: Any, after: Any, rule: Rule | None = None) -> DriftItem:
        exp, act = (after, before) if flip else (before, after)
        return DriftItem(stack, address, kind, action, attr, exp, act,
                         rule.id if rule else "", rule.reason if rule else "")

    if action in ("create", "delete"):
        if kind == "drift":
            exp, act = ("present", "deleted outside Terraform") if action == "delete" else ("absent", "present")
        else:
            exp, act = ("present (in code)", "absent") if action == "create" else ("absent (not in code)", "present")
        return [DriftItem(stack, address, kind, action, RESOURCE, exp, act)]

    def hook(path: str, before: Any, after: Any):
        for r in rules:
            if fnmatchcase(path, r.attribute) and _verdict(r, before, after):
                return item(path, before, after, r)
        return None

    return [d if isinstance(d, DriftItem) else item(d.path, d.before, d.after)
            for d in attribute_diffs(change, hook if rules else None)]


def analyze(stack: str, refresh_plan: dict[str, Any] | None, plan: dict[str, Any] | None,
            allow: Allowlist) -> list[DriftItem]:
    items: list[DriftItem] = []
    for rc in (refresh_plan or {}).get("resource_drift") or ():
        if rc.get("mode") != "data" and action_of(rc["change"]["actions"]) != "no-op":
            items.extend(_items(stack, rc, "drift", allow))
    seen = {(i.address, i.attribute): i for i in items}
    for rc in (plan or {}).get("resource_changes") or ():
        if rc.get("mode") == "data" or action_of(rc["change"]["actions"]) == "no-op":
            continue
        for it in _items(stack, rc, "pending", allow):
            twin = seen.get((it.address, it.attribute))
            if twin is not None:  # the apply would undo this drift: one line, not two
                twin.reverted_by_apply = True
            elif it.attribute == RESOURCE and (it.address, RESOURCE) in seen:
                seen[(it.address, RESOURCE)].reverted_by_apply = True
            else:
                items.append(it)
    return items


def unmanaged_items(objects: list[CloudObject], allow: Allowlist, scope: str) -> list[DriftItem]:
    out = []
    for o in objects:
        rule = allow.match_object(o)
        out.append(DriftItem(scope, f"{o.service}:{o.type}:{o.name or o.id}", "unmanaged", "unmanaged", RESOURCE,
                             "not in Terraform state", o.id, rule.id if rule else "", rule.reason if rule else ""))
    return out


# ------------------------------------------------------------------ the report


@dataclass
class DriftReport:
    env: str
    items: list[DriftItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def active(self) -> list[DriftItem]:
        return [i for i in self.items if not i.ignored_by]

    @property
    def ignored(self) -> list[DriftItem]:
        return [i for i in self.items if i.ignored_by]

    @property
    def exit_code(self) -> int:
        return 2 if self.active else 0

    def counts(self) -> dict[str, int]:
        out = {"drift": 0, "pending": 0, "unmanaged": 0, "ignored": 0}
        for i in self.items:
            out["ignored" if i.ignored_by else i.kind] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        # Shallow: the values are already plain JSON data from the plan (asdict would deep-copy them).
        return {"environment": self.env, "drift": bool(self.active), "exit_code": self.exit_code,
                "counts": self.counts(), "items": [dict(vars(i)) for i in self.active],
                "ignored": [dict(vars(i)) for i in self.ignored], "notes": self.notes}

    def markdown(self) -> str:
        c = self.counts()
        head = "no drift" if not self.active else (f"{c['drift']} changed outside Terraform, {c['pending']} pending "
                                                   f"change(s), {c['unmanaged']} unmanaged object(s)")
        lines = [f"# Drift report: {self.env}", "", f"**{head}**; {c['ignored']} known false diff(s) ignored.", ""]
        lines += [f"> {n}" for n in self.notes]
        sections = [("Changed outside Terraform", [i for i in self.active if i.kind == "drift"]),
                    ("Pending changes (code differs from the cloud)", [i for i in self.active if i.kind == "pending"]),
                    ("Unmanaged objects (not in Terraform state)", [i for i in self.active if i.kind == "unmanaged"]),
                    ("Ignored (allowlisted known false diffs)", self.ignored)]
        for title, rows in sections:
            if not rows:
                continue
            lines += ["", f"## {title}", "", "| stack | address | attribute | expected | actual | note |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for i in rows:
                note = f"{i.ignored_by}: {i.reason}" if i.ignored_by else (
                    "apply would revert it" if i.reverted_by_apply else i.action)
                lines.append(f"| {i.stack} | `{i.address}` | `{i.attribute}` | {_cell(i.expected)} | "
                             f"{_cell(i.actual)} | {note} |")
        return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`{text[:117]}...`" if len(text) > 120 else f"`{text}`"
