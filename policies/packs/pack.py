"""A rule pack: a name and the rules its module declares with the ``rule`` decorator."""

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
