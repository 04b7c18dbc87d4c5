"""`mlkit check` as a function: synth the environments with the policy aspects, run checkov, merge."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import checkov as ck
from .engine import PolicyRun
from .report import Report, locate

if TYPE_CHECKING:
    from envconfig.environment import EnvironmentConfig

StackHook = Callable[[object, "EnvironmentConfig"], None]


def run_check(configs: dict[str, "EnvironmentConfig"], outdir: Path, *, use_checkov: bool = True,
              environments_dir: str | None = None, today: dt.date | None = None,
              extra_hook: StackHook | None = None) -> Report:
    """Synthesize ``configs`` into ``outdir``, evaluate the packs and (optionally) checkov on every stack.

    ``extra_hook`` runs on each stack before the policy aspect is attached (tests use it to plant
    a violation in an otherwise real stack).
    """
    from stacks.app import build_app

    run = PolicyRun(today=today, environments_dir=environments_dir)
    Path(outdir).mkdir(parents=True, exist_ok=True)  # cdktn creates only the last directory level

    def hook(stack, cfg):
        if extra_hook is not None:
            extra_hook(stack, cfg)
        run.hook(stack, cfg)

    # Start checkov first: its import overlaps the synth.
    driver = ck.Checkov() if use_checkov else None
    try:
        app = build_app(configs, str(outdir), stack_hook=hook)
        app.synth()
        extra = []
        if driver is not None:
            files = {name: path for name, path in _stack_files(outdir).items() if name in run.stack_env}
            jobs = [ck.Job(stack, run.stack_env[stack], files[stack], tuple(run.checkov_skips(run.stack_env[stack])))
                    for stack in sorted(files)]
            outputs = driver.scan(jobs)
            for job in jobs:
                extra += ck.to_findings(outputs.get(job.stack), job, run.configs[job.env].prod_like)
    finally:
        if driver is not None:
            driver.close()
    report = run.evaluate(extra, checkov_envs=run.configs if driver is not None else ())
    report.checkov_version = driver.version if driver is not None else None
    locate(report.findings, Path(outdir))
    return report


def _stack_files(outdir: Path) -> dict[str, Path]:
    from .report import stack_files

    return stack_files(Path(outdir))
