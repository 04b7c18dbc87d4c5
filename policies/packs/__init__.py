"""Rule packs. Each module declares its rules with :func:`rule`; :data:`ALL` is every rule by id."""

from __future__ import annotations

from typing import Callable

from ..model import Applies, Check, Rule, Severity


class Pack:
    def __init__(self, name: str):
        self.name = name
        self.rules: list[Rule] = []

    def rule(self, id: str, severity: Severity, title: str, *, why: str, fix: str, types: tuple[str, ...] = (),
             kinds: tuple[str, ...] = ("resource",), applies: Applies = "all",
             checkov: tuple[str, ...] = ()) -> Callable[[Check], Check]:
        def register(check: Check) -> Check:
            self.rules.append(Rule(id=id, pack=self.name, severity=severity, title=title, why=why, fix=fix,
                                   check=check, types=types, kinds=kinds, applies=applies, checkov=checkov))
            return check
        return register


def all_rules() -> dict[str, Rule]:
    from . import azure_baseline, databricks, governance, meta
    from . import orchestration  # issue 13: Data Factory, Azure ML, Application Insights

    out: dict[str, Rule] = {}
    for pack in (azure_baseline.PACK, databricks.PACK, governance.PACK, meta.PACK,
                 orchestration.PACK):
        for r in pack.rules:
            if r.id in out:
                raise RuntimeError(f"duplicate rule id {r.id}")
            out[r.id] = r
    return out
