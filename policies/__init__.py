"""Guardrail rule packs, run as CDK Terrain Aspects at synth time, plus the checkov gate.

- :mod:`policies.packs` — azure-baseline, databricks, governance (each rule: id, severity, title,
  why, fix, environments) and the suppression meta-rules.
- :func:`policies.suppressions.suppress` — waive a rule on a construct, with a reason (cdk-nag
  style). The constructs import only this module: it loads no rule pack.
- :class:`policies.engine.PolicyRun` — ``stack_hook`` for ``stacks.app.build_app``;
  ``evaluate()`` -> :class:`policies.report.Report`. ``policies.engine.RULES``: every rule by id.
- :func:`policies.check.checkov_findings` — checkov over one synth's stacks, as findings of its run.
  The synth itself (packs attached, the synth gate, checkov when asked) is ``mlkit.ops.synth``.

Nothing is imported here, so that importing a construct (which imports policies.suppressions)
does not import the engine, whose import collects every pack's rules.
"""
