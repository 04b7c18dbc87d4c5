"""Checkov over the stacks of one synth, as findings of the same policy run (what `mlkit check` adds
to the packs). The synth itself is mlkit.ops.synth's: this module only scans files already written."""

from __future__ import annotations

from pathlib import Path

from envconfig.synth_output import stack_files

from . import checkov as ck
from .engine import PolicyRun
from .model import Finding


def checkov_findings(run: PolicyRun, outdir: Path, driver: ck.Checkov) -> list[Finding]:
    """Scan every stack of ``outdir`` that ``run`` saw synthesized, with its environment's waivers."""
    files = {name: path for name, path in stack_files(Path(outdir)).items() if name in run.stack_env}
    jobs = [ck.Job(stack, run.stack_env[stack], files[stack], tuple(run.checkov_skips(run.stack_env[stack])))
            for stack in sorted(files)]
    outputs = driver.scan(jobs)
    found: list[Finding] = []
    for job in jobs:
        found += ck.to_findings(outputs.get(job.stack), job, run.configs[job.env].prod_like)
    return found
