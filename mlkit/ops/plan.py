"""Terraform plan JSON (``terraform show -json``) -> summaries and attribute-level diffs.

The format is Terraform's documented JSON output (format_version 1.x): ``resource_changes``
is what an apply would do, ``resource_drift`` is what changed outside Terraform since the
last apply (filled by refresh). Both use the same change representation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

SKIP = {("no-op",), ("read",)}
SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"


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


# ------------------------------------------------------------------ attribute diffs


@dataclass(frozen=True)
class AttrDiff:
    path: str
    before: Any
    after: Any


def _marked(mark: Any, key: Any) -> Any:
    if isinstance(mark, dict):
        return mark.get(key, False)
    if isinstance(mark, list):
        return mark[key] if isinstance(key, int) and key < len(mark) else False
    return mark


def _show(value: Any, sensitive: Any) -> Any:
    return SENSITIVE if sensitive is True else value


def attribute_diffs(change: dict[str, Any], hook=None) -> Iterator[AttrDiff]:
    """Leaf-level differences between ``before`` and ``after`` of one change.

    ``hook(path, before, after)`` may return an AttrDiff-like verdict to stop descending
    (used by the allowlist to treat a reordered list as one item).
    Sensitive values are never printed; unknown values read "(known after apply)".
    """
    yield from _walk("", change.get("before"), change.get("after"), change.get("after_unknown"),
                     change.get("before_sensitive"), change.get("after_sensitive"), hook)


def _walk(path, before, after, unknown, bsens, asens, hook):
    if unknown is True:
        if before is not None:
            yield AttrDiff(path, _show(before, bsens), UNKNOWN)
        return
    if before == after and bsens == asens:
        return
    if hook is not None and path:
        verdict = hook(path, before, after)
        if verdict is not None:
            yield verdict
            return
    if isinstance(before, dict) and isinstance(after, dict):
        for k in sorted(set(before) | set(after)):
            yield from _walk(f"{path}.{k}" if path else k, before.get(k), after.get(k), _marked(unknown, k),
                             _marked(bsens, k), _marked(asens, k), hook)
        return
    if isinstance(before, list) and isinstance(after, list):
        for i in range(max(len(before), len(after))):
            yield from _walk(f"{path}.{i}" if path else str(i),
                             before[i] if i < len(before) else None, after[i] if i < len(after) else None,
                             _marked(unknown, i), _marked(bsens, i), _marked(asens, i), hook)
        return
    yield AttrDiff(path, _show(before, bsens), _show(after, asens))
