"""The rule engine: an Aspect per stack that runs every rule on every Terraform element at synth time.

Usage (this is what ``mlkit check`` and ``mlkit synth`` do)::

    run = PolicyRun()
    app = build_app(configs, outdir, stack_hook=run.hook)
    app.synth()                      # aspects run here, findings are collected
    report = run.evaluate()          # suppressions applied, meta findings added
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Iterable

import cdktn
import jsii

from .model import Context, Element, Finding, Rule
from .packs import all_rules
from .report import Report
from .suppressions import ActiveSuppression, from_config, from_construct

if TYPE_CHECKING:
    from envconfig.environment import EnvironmentConfig

RULES: dict[str, Rule] = all_rules()


@jsii.implements(cdktn.IAspect)
class PolicyAspect:
    """Visits every construct of one stack; hands each Terraform element to the run."""

    def __init__(self, run: "PolicyRun", cfg: "EnvironmentConfig", stack: str):
        self._run, self._cfg, self._stack = run, cfg, stack

    def visit(self, node) -> None:
        try:
            self._run.visit(node, self._cfg, self._stack)
        except Exception as e:  # never let a policy bug abort the synth with a JavaScript stack trace
            self._run.add(Finding("MLK-ENG-001", "error", RULES["MLK-ENG-001"].title,
                                  f"policy engine failed on this construct: {type(e).__name__}: {e}",
                                  self._cfg.name, self._stack, node.node.path, ""))


def element_of(node, stack: str, path: str | None = None) -> Element | None:
    """The Terraform block a construct renders, or None for plain constructs."""
    if not isinstance(node, cdktn.TerraformElement):
        return None
    path = path or node.node.path
    tf = node.to_terraform() or {}
    if isinstance(node, cdktn.TerraformResource):
        kind, section = "resource", (tf.get("resource") or {})
    elif isinstance(node, cdktn.TerraformDataSource):
        kind, section = "data", (tf.get("data") or {})
    else:
        section = {}
        kind = "other"
    if section:
        rtype, named = next(iter(section.items()))
        name, config = next(iter(named.items()))
        config = {k: v for k, v in config.items() if k != "//"}
        return Element(kind, rtype, name, path, stack, config, taggable=hasattr(type(node), "tags_input"))
    for key, kind in (("provider", "provider"), ("output", "output"), ("variable", "variable")):
        if key in tf and tf[key]:
            name, config = next(iter(tf[key].items()))
            if isinstance(config, list):
                config = config[0] if config else {}
            if kind == "provider" and config.get("alias"):
                name = f"{name}.{config['alias']}"
            return Element(kind, name.split(".")[0] if kind == "provider" else kind, name, path, stack, config)
    if "locals" in tf:
        return Element("locals", "locals", "locals", path, stack, tf["locals"])
    return Element("other", type(node).__name__, path, path, stack, tf)


class PolicyRun:
    """Collects findings from the aspects of one synth; :meth:`evaluate` applies the suppressions."""

    def __init__(self, rules: dict[str, Rule] | None = None, today: dt.date | None = None,
                 environments_dir: str | None = None):
        self.rules = rules or RULES
        self.today = today or dt.date.today()
        self.environments_dir = environments_dir
        self.configs: dict[str, "EnvironmentConfig"] = {}
        self.stack_env: dict[str, str] = {}
        self.findings: list[Finding] = []
        self.construct_suppressions: list[ActiveSuppression] = []
        self.elements = 0
        self._seen: set[tuple] = set()

    # -- synth time ---------------------------------------------------------------------------------
    def hook(self, stack, cfg: "EnvironmentConfig") -> None:
        """``stack_hook`` for ``stacks.app.build_app``: attach the policy aspect to ``stack``."""
        name = stack.node.id
        self.configs[cfg.name] = cfg
        self.stack_env[name] = cfg.name
        cdktn.Aspects.of(stack).add(PolicyAspect(self, cfg, name))

    def visit(self, node, cfg: "EnvironmentConfig", stack: str) -> None:
        path = node.node.path  # one jsii round trip, reused below
        if (stack, path) in self._seen:  # a second app.synth() re-runs the aspects
            return
        self._seen.add((stack, path))
        self.construct_suppressions.extend(from_construct(node, cfg.name, path))
        el = element_of(node, stack, path)
        if el is None:
            return
        self.elements += 1
        ctx = Context(cfg)
        for rule in self.rules.values():
            if not rule.applies_to(el, cfg):
                continue
            try:
                messages = list(rule.check(el, ctx))
            except Exception as e:  # a rule bug is a finding, not a crash
                messages = []
                self.add(Finding("MLK-ENG-001", "error", self.rules["MLK-ENG-001"].title,
                                 f"{rule.id} failed: {type(e).__name__}: {e}", cfg.name, stack, el.path, el.address))
            for message in messages:
                self.add(Finding(rule.id, rule.severity, rule.title, message, cfg.name, stack, el.path, el.address,
                                 help=rule.fix))

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    # -- after synth ----------------------------------------------------------------------------------
    def suppressions(self, env: str) -> list[ActiveSuppression]:
        cfg = self.configs[env]
        return from_config(cfg, self.environments_dir) + [s for s in self.construct_suppressions if s.env == env]

    def checkov_skips(self, env: str) -> list[str]:
        """checkov ids waived for the whole environment (target '*'): passed to checkov as --skip-check."""
        ids: set[str] = set()
        for s in self.suppressions(env):
            if s.on_construct or s.target != "*" or not self._valid(s):
                continue
            ids.update([s.rule] if _is_checkov(s.rule) else self.rules[s.rule].checkov)
        return sorted(ids)

    def _valid(self, s: ActiveSuppression) -> bool:
        return s.valid_reason() and not s.expired(self.today) and (_is_checkov(s.rule) or s.rule in self.rules)

    def evaluate(self, extra: Iterable[Finding] = (), checkov_envs: Iterable[str] = ()) -> Report:
        """Apply suppressions to our findings plus ``extra`` (checkov's); add suppression findings.

        ``checkov_envs``: environments checkov ran for (only there can a checkov suppression be stale).
        """
        checkov_envs = set(checkov_envs)
        findings = self.findings + list(extra)
        meta: list[Finding] = []
        all_sups: list[ActiveSuppression] = []
        for env in sorted(self.configs):
            sups = self.suppressions(env)
            all_sups.extend(sups)
            valid = []
            for s in sups:
                problem = self._problem(s)
                if problem:
                    meta.append(self._meta(*problem, s))
                else:
                    valid.append(s)
            used: set[tuple] = set()
            for f in findings:
                if f.env != env or f.suppressed:
                    continue
                for s in valid:
                    if s.covers(f, self.rules):
                        f.suppressed_by = s
                        used.add(s.key())
                        break
            for s in valid:
                if s.key() in used:
                    continue
                if s.target == "*" and not s.on_construct and self._skips_checkov(s):
                    continue  # handed to checkov as --skip-check: checkov does not say what it skipped
                if _is_checkov(s.rule) and env not in checkov_envs:
                    continue  # checkov did not run: cannot tell
                meta.append(self._meta("MLK-SUP-003", f"suppression of {s.rule} {s.where} matches no finding "
                                                      f"in {env}: remove it or fix its rule/target", s))
        return Report(envs=sorted(self.configs), findings=findings + meta, suppressions=all_sups, rules=self.rules,
                      today=self.today, checkov_envs=sorted(checkov_envs))

    def _skips_checkov(self, s: ActiveSuppression) -> bool:
        return _is_checkov(s.rule) or bool(self.rules[s.rule].checkov)

    def _problem(self, s: ActiveSuppression) -> tuple[str, str] | None:
        if not (_is_checkov(s.rule) or s.rule in self.rules):
            return "MLK-SUP-004", f"suppression {s.where} names unknown rule {s.rule!r}"
        if s.rule.startswith(("MLK-SUP-", "MLK-ENG-")):
            return "MLK-SUP-004", f"suppression {s.where}: {s.rule} cannot be suppressed"
        if not s.valid_reason():
            return "MLK-SUP-001", (f"suppression of {s.rule} {s.where} has no reason (needs at least 10 "
                                   f"characters saying why); it is not applied")
        if s.expired(self.today):
            return "MLK-SUP-002", (f"suppression of {s.rule} {s.where} expired on {s.expires}; "
                                   f"it is not applied")
        return None

    def _meta(self, rule_id: str, message: str, s: ActiveSuppression) -> Finding:
        rule = self.rules[rule_id]
        stack = s.target.split("/")[0] if s.on_construct else ""
        return Finding(rule_id, rule.severity, rule.title, message, s.env, stack,
                       s.target if s.on_construct else "", "", file="" if s.on_construct else s.origin,
                       help=rule.fix)


def _is_checkov(rule_id: str) -> bool:
    return rule_id.startswith(("CKV_", "CKV2_"))
