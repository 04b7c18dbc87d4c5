"""suppressions: problems with the suppressions themselves, and rules that could not run.

These are not checks over elements (their check yields nothing); the engine reports them.
"""

from __future__ import annotations

from .pack import Pack

PACK = Pack("suppressions")


def _none(el, ctx):
    return ()


def _meta(id: str, severity: str, title: str, why: str, fix: str) -> None:
    PACK.rule(id, severity, title, why=why, fix=fix, kinds=())(_none)  # type: ignore[arg-type]


_meta("MLK-SUP-001", "error", "Suppressions carry a reason",
      "A waiver without a reason cannot be reviewed, renewed or retired.",
      "Give the suppression a reason of at least 10 characters saying why the finding is accepted.")
_meta("MLK-SUP-002", "error", "Suppressions are not expired",
      "An expiry date is a promise to revisit the trade-off; past it the waiver no longer holds.",
      "Fix the finding, or renew the suppression with a new expiry date and an updated reason.")
_meta("MLK-SUP-003", "warning", "Suppressions match a finding",
      "A stale suppression would silently waive a future, unrelated violation.",
      "Remove the suppression, or correct its rule id or target.")
_meta("MLK-SUP-004", "error", "Suppressions name a known rule",
      "A misspelt rule id suppresses nothing and hides that the author meant to waive something.",
      "Use an id from `mlkit check --rules` (MLK-...) or a checkov id (CKV_... / CKV2_...).")
_meta("MLK-ENG-001", "error", "Every rule could be evaluated",
      "A rule that crashed on an element has not checked it.",
      "Report the message as a bug in policies/; the element stays unchecked until it is fixed.")
