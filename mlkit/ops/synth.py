"""The one synth: environment configs -> stacks -> Terraform JSON in a directory, the policy packs
run as aspects on the way and, when asked, checkov over the files written.

main.py, `mlkit synth`, `mlkit check`, `mlkit graph`, deploy and drift all synthesize through
:func:`synthesize`, so what is checked, drawn, planned and applied is one and the same output:
prod-like stacks always carry their release-lock gate (read from ``environments``), and other
environments' stacks already in the directory stay in its manifest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from envconfig.environment import EnvironmentConfig
from envconfig.errors import UserError

from .release import expectations

if TYPE_CHECKING:
    from policies.engine import PolicyRun
    from policies.model import Finding
    from policies.report import Report
    from stacks.app import StackSummary


@dataclass
class Synthesis:
    outdir: Path
    configs: dict[str, EnvironmentConfig]
    stacks: list["StackSummary"]           # the stacks written for these environments
    run: "PolicyRun | None" = None         # the packs' run (None: synthesized with policies off)
    report: "Report | None" = None         # its findings, suppressions applied (checkov's too when asked)
    refused: dict[str, list["Finding"]] = field(default_factory=dict)  # filled by refuse_failing


def synthesize(configs: dict[str, EnvironmentConfig], outdir: Path, *, environments: Path | None = None,
               policies: bool = True, checkov: bool = False, today: dt.date | None = None,
               extra_hook: Callable[[object, EnvironmentConfig], None] | None = None) -> Synthesis:
    """Write ``configs``' stacks into ``outdir``; with ``policies`` the packs judge them as they are built.

    ``environments``: where the release locks (and the files suppressions are reported in) are.
    ``extra_hook`` runs on each stack before the policy aspect is attached (tests plant violations).
    """
    from envconfig.naming import NamingError
    from stacks.app import REPO, build_app, stack_names, summarize
    from stacks.errors import StackInputError
    from envconfig.synth_output import keep_in_manifest, other_stacks

    outdir = Path(outdir)
    run = None
    if policies or checkov:
        from policies.engine import PolicyRun

        run = PolicyRun(today=today, environments_dir=str(environments) if environments else None)

    def hook(stack, cfg) -> None:
        if extra_hook is not None:
            extra_hook(stack, cfg)
        if run is not None:
            run.hook(stack, cfg)

    outdir.mkdir(parents=True, exist_ok=True)  # cdktn creates only the last directory level
    driver = _checkov() if checkov else None  # started first: its import overlaps the synth
    try:
        try:
            app = build_app(configs, str(outdir), stack_hook=hook, releases=expectations(configs, environments, REPO))
        except (StackInputError, NamingError) as e:
            raise UserError(f"cannot build the stacks: {e}") from None
        kept = other_stacks(outdir, set(stack_names(configs)), set(configs))
        app.synth()
        keep_in_manifest(outdir, kept)
        extra = []
        if driver is not None:
            from policies.check import checkov_findings
            from policies.checkov import CheckovUnavailable

            try:
                extra = checkov_findings(run, outdir, driver)
            except CheckovUnavailable as e:
                raise UserError(str(e)) from None
    finally:
        if driver is not None:
            driver.close()
    report = None
    if run is not None:
        from policies.report import locate

        report = run.evaluate(extra, checkov_envs=run.configs if driver is not None else ())
        report.checkov_version = driver.version if driver is not None else None
        locate(report.findings, outdir)
    return Synthesis(outdir, configs, summarize(outdir, set(stack_names(configs))), run, report)


def refuse_failing(synthesis: Synthesis) -> Synthesis:
    """The synth gate (`mlkit synth`, main.py): an environment with an unsuppressed error finding
    gets no stacks in the output (removed from the directory and from the manifest)."""
    from stacks.app import stack_names
    from envconfig.synth_output import remove_stacks

    if synthesis.report is None:
        return synthesis
    for f in synthesis.report.blocking:
        synthesis.refused.setdefault(f.env, []).append(f)
    refused = set(stack_names({e: synthesis.configs[e] for e in synthesis.refused}))
    remove_stacks(synthesis.outdir, sorted(refused))
    synthesis.stacks = [s for s in synthesis.stacks if s.name not in refused]
    return synthesis


def refusal_message(synthesis: Synthesis) -> str:
    lines = []
    for env, findings in sorted(synthesis.refused.items()):
        lines.append(f"refusing to synthesize {env}: {len(findings)} unsuppressed policy error(s)")
        for f in findings:
            lines.append(f"  {f.rule_id} {f.address or f.path or f.file}: {f.message}")
    lines.append("fix them, suppress them with a reason (environment file `suppressions:` or "
                 "policies.suppress on the construct), or pass --no-policy; `mlkit check` shows details")
    return "\n".join(lines)


def _checkov():
    from policies.checkov import Checkov, CheckovUnavailable

    try:
        return Checkov()
    except CheckovUnavailable as e:
        raise UserError(str(e)) from None
