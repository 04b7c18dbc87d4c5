"""Drift report: what changed outside Terraform, what an apply would change, and what
exists in the cloud without being in Terraform state.

Inputs are plan JSON documents (``terraform show -json`` of a ``-refresh-only`` plan and of
a normal plan, checked to be plans) and cloud inventories; output is a report in Markdown and
JSON. Exit codes: 0 no drift, 2 drift, 1 error. Every value in the report went through the
plan's sensitive marks (plan_diff.py); the allowlist cannot hide identity, permission or
network changes (drift_rules.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .drift_rules import DEFAULT_ALLOWLIST, Allowlist, Rule, load_allowlist, protected  # noqa: F401 (re-exported)
from .inventory import CloudObject
from .plan import action_of, check_plan
from .plan_diff import SENSITIVE, AttrDiff, attribute_diffs, scrub, secrets_of

RESOURCE = "(resource)"
VALUE = "(value)"
_FLIP = {"added": "removed", "removed": "added"}


@dataclass
class DriftItem:
    stack: str
    address: str
    type: str       # terraform resource type, "output", or the inventory object's type
    kind: str       # drift (changed outside Terraform) | pending (apply would change) | unmanaged
    action: str     # update | delete | create | replace | unmanaged
    attribute: str
    change: str     # expected -> actual: changed | added | removed | reordered | reformatted | null-or-empty
    expected: Any
    actual: Any
    category: str = ""  # identity | permission | network: never noise
    ignored_by: str = ""
    reason: str = ""
    note: str = ""
    reverted_by_apply: bool = False
    forces_replacement: bool = False
    service: str = ""  # unmanaged objects: azure | databricks

    def ignore(self, rule: Rule | None, note: str = "") -> DriftItem:
        if rule is not None:
            self.ignored_by, self.reason = rule.id, rule.reason
        self.note = note
        return self


def _replace_paths(change: dict) -> list[str]:
    out = []
    for p in change.get("replace_paths") or ():
        text = ""
        for k in p:
            text += f"[{k}]" if isinstance(k, int) else (f".{k}" if text else str(k))
        out.append(text)
    return out


def _items(stack: str, rc: dict, kind: str, allow: Allowlist) -> list[DriftItem]:
    change, address, rtype = rc["change"], rc["address"], rc["type"]
    action = action_of(change["actions"])

    def row(attr: str, change_: str, expected: Any, actual: Any) -> DriftItem:
        category = protected(rtype, attr, expected, actual)
        item = DriftItem(stack, address, rtype, kind, action, attr, change_, expected, actual, category)
        return item.ignore(*allow.match(rtype, attr, change_, expected, actual, category))

    if action in ("create", "delete"):
        if kind == "drift":
            exp, act = ("present", "deleted outside Terraform") if action == "delete" else ("absent", "present")
            return [row(RESOURCE, "removed" if action == "delete" else "added", exp, act)]
        exp, act = ("present (in code)", "absent") if action == "create" else ("absent (not in code)", "present")
        return [row(RESOURCE, "removed" if action == "create" else "added", exp, act)]
    replaced = _replace_paths(change)
    out = []
    for d in attribute_diffs(change):
        out.append(_oriented(d, kind, row))
        out[-1].forces_replacement = any(out[-1].attribute == p or out[-1].attribute.startswith((p + ".", p + "["))
                                         for p in replaced)
    return out


def _oriented(d: AttrDiff, kind: str, row) -> DriftItem:
    # drift: state said `before`, the cloud says `after`. pending: the code wants `after`, the cloud has `before`.
    attr = d.path or VALUE
    if kind == "drift":
        return row(attr, d.change, d.before, d.after)
    return row(attr, _FLIP.get(d.change, d.change), d.after, d.before)


def _outputs(stack: str, plan: dict, allow: Allowlist) -> list[DriftItem]:
    """Output changes of the normal plan (``plan -detailed-exitcode`` says 2 for them too).
    The refresh-only plan's are skipped: it re-evaluates outputs from the code as well."""
    out = []
    for name, change in sorted((plan.get("output_changes") or {}).items()):
        if action_of(change["actions"]) == "no-op":
            continue
        out += _items(stack, {"address": f"output.{name}", "type": "output", "change": change}, "pending", allow)
    return out


def _key(i: DriftItem) -> tuple:
    return i.address, i.attribute, json.dumps(i.expected, sort_keys=True, default=str), \
        json.dumps(i.actual, sort_keys=True, default=str)


def analyze(stack: str, refresh_plan: dict[str, Any] | None, plan: dict[str, Any] | None,
            allow: Allowlist) -> list[DriftItem]:
    """Rows of one stack. Each document, when given, must be a plan (UserError otherwise)."""
    refresh_plan = check_plan(refresh_plan, f"{stack}: refresh-only plan") if refresh_plan is not None else {}
    plan = check_plan(plan, f"{stack}: plan") if plan is not None else {}
    items: list[DriftItem] = []
    for rc in refresh_plan.get("resource_drift") or ():
        if rc.get("mode") != "data" and action_of(rc["change"]["actions"]) != "no-op":
            items.extend(_items(stack, rc, "drift", allow))
    drifted = {_key(i): i for i in items}
    deleted = {i.address: i for i in items if i.attribute == RESOURCE and i.action == "delete"}
    for rc in plan.get("resource_changes") or ():
        if rc.get("mode") == "data" or action_of(rc["change"]["actions"]) == "no-op":
            continue
        for it in _items(stack, rc, "pending", allow):
            twin = drifted.get(_key(it))
            if twin is None and it.attribute == RESOURCE and it.action == "create":
                twin = deleted.get(it.address)
            if twin is not None:  # the apply would undo this drift: one line, not two
                twin.reverted_by_apply = True
            else:
                items.append(it)
    items += _outputs(stack, plan, allow)
    secrets = secrets_of(refresh_plan) | secrets_of(plan)
    for i in items if secrets else ():
        i.expected, i.actual = scrub(i.expected, secrets), scrub(i.actual, secrets)
        if scrub(i.attribute, secrets) == SENSITIVE:  # a secret in a list element's name
            i.attribute = i.attribute.split("[", 1)[0] + "[(sensitive)]"
    return items


def unmanaged_items(objects: list[CloudObject], allow: Allowlist) -> list[DriftItem]:
    out = []
    for o in objects:
        rule = allow.match_object(o)
        item = DriftItem("", o.name or o.id, o.type, "unmanaged", "unmanaged", RESOURCE, "added",
                         "not in Terraform state", o.id, service=o.service)
        out.append(item.ignore(rule))
    return out


# ------------------------------------------------------------------ the report

SECTIONS = (
    ("drift", "Changed outside Terraform", "expected (state)", "actual (cloud)"),
    ("pending", "Pending changes (the code differs from the cloud)", "expected (code)", "actual (cloud)"),
)


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
        """Resources (and unmanaged objects), not rows."""
        def resources(rows, kind):
            return len({(i.stack, i.address) for i in rows if i.kind == kind})
        return {"changed_outside_terraform": resources(self.active, "drift"),
                "pending_changes": resources(self.active, "pending"),
                "unmanaged_objects": resources(self.active, "unmanaged"),
                "protected_changes": len({(i.stack, i.address) for i in self.active if i.category}),
                "ignored_items": len(self.ignored)}

    def as_dict(self) -> dict[str, Any]:
        # Shallow: the values are already masked, plain JSON data from the plan.
        return {"environment": self.env, "drift": bool(self.active), "exit_code": self.exit_code,
                "counts": self.counts(), "items": [dict(vars(i)) for i in self.active],
                "ignored": [dict(vars(i)) for i in self.ignored], "notes": self.notes}

    def headline(self) -> str:
        c = self.counts()
        if not self.active:
            return "no drift"
        parts = [f"{n} {what}" for n, what in ((c["changed_outside_terraform"], "resource(s) changed outside Terraform"),
                                               (c["pending_changes"], "resource(s) with pending changes"),
                                               (c["unmanaged_objects"], "unmanaged object(s)")) if n]
        protected_ = f"; {c['protected_changes']} of them touch identity, permissions or network" \
            if c["protected_changes"] else ""
        return ", ".join(parts) + protected_

    def markdown(self) -> str:
        lines = [f"# Drift report: {self.env}", "",
                 f"**{self.headline()}**; {self.counts()['ignored_items']} known false diff(s) ignored.", ""]
        lines += [f"> {n}" for n in self.notes]
        for kind, title, exp, act in SECTIONS:
            lines += _resources_md(title, [i for i in self.active if i.kind == kind], exp, act)
        lines += _unmanaged_md("Unmanaged objects (not in Terraform state)",
                               [i for i in self.active if i.kind == "unmanaged"])
        ignored = self.ignored
        lines += _resources_md("Ignored (known false diffs, by rule)", [i for i in ignored if i.kind != "unmanaged"],
                               "expected", "actual", ignored=True)
        lines += _unmanaged_md("Ignored unmanaged objects", [i for i in ignored if i.kind == "unmanaged"],
                               ignored=True)
        return "\n".join(lines) + "\n"


def _resources_md(title: str, rows: list[DriftItem], exp: str, act: str, ignored: bool = False) -> list[str]:
    if not rows:
        return []
    groups: dict[tuple, list[DriftItem]] = {}
    for i in rows:
        groups.setdefault((i.stack, i.address), []).append(i)
    lines = ["", f"## {title}: {len(groups)} resource(s)"]
    for (stack, address), items in groups.items():
        first = items[0]
        what = {"replace": "**destroys and re-creates** it", "delete": "deletes it", "create": "creates it",
                "update": "updates it in place"}.get(first.action, first.action)
        reverted = sum(i.reverted_by_apply for i in items)
        state = (f"the apply {what}" if first.kind == "pending" else "the apply would revert it"
                 if reverted == len(items) else "the apply reverts part of it" if reverted
                 else "the apply does not revert it: change the code or the cloud")
        head = f"### `{address}` ({stack}, {first.kind})" + ("" if ignored else f": {state}")
        if not ignored and any(i.category for i in items):
            head += f" — **{'/'.join(sorted({i.category for i in items if i.category}))} change**"
        lines += ["", head, "", f"| attribute | change | {exp} | {act} | note |", "| --- | --- | --- | --- | --- |"]
        for i in items:
            note = [f"{i.ignored_by}: {i.reason}"] if i.ignored_by else []
            note += [i.category] if i.category and not i.ignored_by else []
            note += ["forces replacement"] if i.forces_replacement else []
            note += ["the apply reverts it"] if i.reverted_by_apply and not ignored else []
            note += [i.note] if i.note else []
            lines.append(f"| `{i.attribute}` | {i.change} | {_cell(i.expected)} | {_cell(i.actual)} | "
                         f"{_escape('; '.join(note))} |")
    return lines


def _unmanaged_md(title: str, rows: list[DriftItem], ignored: bool = False) -> list[str]:
    if not rows:
        return []
    lines = ["", f"## {title}: {len(rows)}", "", "| service | type | name | id | note |",
             "| --- | --- | --- | --- | --- |"]
    for i in rows:
        note = f"{i.ignored_by}: {i.reason}" if ignored else "not in Terraform state: import it or delete it"
        lines.append(f"| {i.service} | `{i.type}` | `{_escape(i.address)}` | {_cell(i.actual)} | {_escape(note)} |")
    return lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    text = _escape(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
    return f"`{text[:117]}...`" if len(text) > 120 else f"`{text}`"
