"""Terraform plan JSON (``terraform show -json``) -> summaries, and whether a document is a plan at all.

The format is Terraform's documented JSON output (format_version 1.x): ``resource_changes``
is what an apply would do, ``resource_drift`` is what changed outside Terraform since the
last apply (filled by refresh). Both use the same change representation; attribute-level
diffs are in plan_diff.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from envconfig.errors import UserError

SKIP = {("no-op",), ("read",)}


def action_of(actions: list[str]) -> str:
    a = tuple(actions)
    if a in (("delete", "create"), ("create", "delete")):
        return "replace"
    if a == ("create",):
        return "create"
    if a == ("update",):
        return "update"
    if a == ("delete",):
        return "delete"
    if a == ("forget",):
        return "forget"
    return "no-op" if a in SKIP or not a else "+".join(a)


@dataclass
class PlanSummary:
    stack: str
    adds: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    destroys: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    forgets: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.adds or self.changes or self.destroys or self.replaces or self.forgets)

    def counts(self) -> str:
        return (f"{len(self.adds)} to add, {len(self.changes)} to change, {len(self.destroys)} to destroy, "
                f"{len(self.replaces)} to replace")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [f"### {self.stack}: {self.counts()}"]
        if not self.has_changes:
            lines.append("No changes.")
        # Every destroy is called out by name: a replace destroys too.
        for addr in self.destroys:
            lines.append(f"- **DESTROY** `{addr}`")
        for addr in self.replaces:
            lines.append(f"- **REPLACE (destroy, then create)** `{addr}`")
        for addr in self.forgets:
            lines.append(f"- forget (removed from state, kept in the cloud) `{addr}`")
        lines += [f"- create `{a}`" for a in self.adds] + [f"- update `{a}`" for a in self.changes]
        return "\n".join(lines)


def summarize(stack: str, plan: dict[str, Any]) -> PlanSummary:
    s = PlanSummary(stack)
    buckets = {"create": s.adds, "update": s.changes, "delete": s.destroys, "replace": s.replaces,
               "forget": s.forgets}
    for rc in plan.get("resource_changes") or ():
        if rc.get("mode") == "data":
            continue
        bucket = buckets.get(action_of(rc["change"]["actions"]))
        if bucket is not None:
            bucket.append(rc["address"])
    return s


# ------------------------------------------------------------------ is it a plan?


def check_plan(doc: Any, where: str) -> dict[str, Any]:
    """``doc`` if it has the shape of ``terraform show -json PLANFILE``; else a UserError naming
    what is wrong. A document that is not a plan must never be judged "no changes"."""
    def bad(msg: str) -> UserError:
        return UserError(f"{where}: {msg}", exit_code=1)

    if not isinstance(doc, dict):
        raise bad(f"not a Terraform plan document (a JSON {type(doc).__name__}, not an object)")
    version = doc.get("format_version")
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise bad(f"format_version is {version!r}: not a Terraform plan document (expected 1.x, "
                  "as `terraform show -json PLANFILE` writes)")
    if not isinstance(doc.get("terraform_version"), str):
        raise bad("no terraform_version: not a Terraform plan document")
    if not isinstance(doc.get("planned_values"), dict):
        raise bad("no planned_values: a state or another document, not a plan")
    if doc.get("errored") is True:
        raise bad("Terraform marked this plan as errored: it is incomplete")
    if doc.get("complete") is False:
        raise bad("Terraform marked this plan as incomplete (deferred changes): it cannot be judged")
    for key in ("resource_changes", "resource_drift"):
        entries = doc.get(key, [])
        if not isinstance(entries, list):
            raise bad(f"{key} is a {type(entries).__name__}, not a list")
        for i, rc in enumerate(entries):
            try:
                ok = (type(rc["address"]) is str and type(rc["type"]) is str and type(rc["change"]) is dict
                      and _actions_ok(rc["change"]))
            except (KeyError, TypeError):
                ok = False
            if not ok:
                raise bad(f"{key}[{i}] is not a resource change (needs address, type and change.actions)")
    outputs = doc.get("output_changes", {})
    if not isinstance(outputs, dict) or not all(isinstance(c, dict) and _actions_ok(c) for c in outputs.values()):
        raise bad("output_changes is not a map of output name -> change with actions")
    return doc


def _actions_ok(change: dict) -> bool:
    actions = change.get("actions")
    return type(actions) is list and all(type(a) is str for a in actions)
