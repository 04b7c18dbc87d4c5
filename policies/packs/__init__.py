"""Rule packs. Each module declares its rules with its :class:`~policies.packs.pack.Pack`'s ``rule``;
:func:`all_rules` is every rule by id."""

from __future__ import annotations

from ..model import Rule


def all_rules() -> dict[str, Rule]:
    from . import azure_baseline, databricks, governance, meta

    out: dict[str, Rule] = {}
    for pack in (azure_baseline.PACK, databricks.PACK, governance.PACK, meta.PACK):
        for r in pack.rules:
            if r.id in out:
                raise RuntimeError(f"duplicate rule id {r.id}")
            out[r.id] = r
    return out
