"""What `mlkit synth` (and `python main.py`) do with the policy findings of the synth they just ran.

The packs run as aspects during that synth (no second synth, no checkov: that is `mlkit check`).
An environment with an unsuppressed error-severity finding is refused: its stacks are removed
from the output directory and from cdktn's manifest, so nothing deployable is left for it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .engine import PolicyRun
from .model import Finding
from .report import Report


@dataclass
class GateResult:
    report: Report
    refused: dict[str, list[Finding]] = field(default_factory=dict)  # env -> its blocking findings

    @property
    def ok(self) -> bool:
        return not self.refused

    def message(self) -> str:
        lines = []
        for env, findings in sorted(self.refused.items()):
            lines.append(f"refusing to synthesize {env}: {len(findings)} unsuppressed policy error(s)")
            for f in findings:
                where = f.address or f.path or f.file
                lines.append(f"  {f.rule_id} {where}: {f.message}")
        lines.append("fix them, suppress them with a reason (environment file `suppressions:` or "
                     "policies.suppress on the construct), or pass --no-policy; `mlkit check` shows details")
        return "\n".join(lines)


class PolicyGate:
    def __init__(self, environments_dir: str | None = None):
        self.run = PolicyRun(environments_dir=environments_dir)

    def hook(self, stack, cfg) -> None:
        self.run.hook(stack, cfg)

    def enforce(self, outdir: Path) -> GateResult:
        """Evaluate; remove refused environments' stacks from ``outdir``."""
        report = self.run.evaluate()
        result = GateResult(report)
        for f in report.blocking:
            result.refused.setdefault(f.env, []).append(f)
        stacks = [s for s, env in self.run.stack_env.items() if env in result.refused]
        remove_stacks(Path(outdir), stacks)
        return result


def remove_stacks(outdir: Path, names: list[str]) -> None:
    if not names:
        return
    manifest = outdir / "manifest.json"
    doc = json.loads(manifest.read_text()) if manifest.is_file() else {"stacks": {}}
    for name in names:
        entry = doc.get("stacks", {}).pop(name, None)
        folder = outdir / (entry["workingDirectory"] if entry else f"stacks/{name}")
        if folder.resolve().is_relative_to(outdir.resolve()) and folder.is_dir():
            shutil.rmtree(folder)
    if manifest.is_file():
        manifest.write_text(json.dumps(doc, indent=2) + "\n")
