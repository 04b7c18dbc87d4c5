"""Guardrail rule packs, run as CDK Terrain Aspects at synth time, plus the checkov gate.

- :mod:`policies.packs` — azure-baseline, databricks, governance (each rule: id, severity, title,
  why, fix, environments) and the suppression meta-rules.
- :func:`suppress` — waive a rule on a construct, with a reason (cdk-nag style).
- :class:`PolicyRun` — ``stack_hook`` for ``stacks.app.build_app``; ``evaluate()`` -> :class:`Report`.
- :func:`policies.check.run_check` — synth + packs + checkov, what ``mlkit check`` runs.
- :func:`policies.gate.refuse` — what ``mlkit synth`` does with unsuppressed errors.
"""

from .engine import RULES, PolicyAspect, PolicyRun
from .model import Element, Finding, Rule
from .report import Report
from .suppressions import suppress

__all__ = ["RULES", "Element", "Finding", "PolicyAspect", "PolicyRun", "Report", "Rule", "suppress"]
