"""The App: every cloud environment -> its platform and workspace stacks.

Wheel contract: the workloads wheel is expected in ``dist/`` next to the output directory
(``cdktf.out/`` -> ``dist/``; ``mlkit deploy`` builds into ``.mlkit/deploy/<env>/dist`` and
synthesizes into ``.mlkit/deploy/<env>/cdktf.out``). The stacks reference it relative to their
own directory, ``../../../dist/<wheel>``, so the synthesized JSON holds no absolute path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cdktn import App, TerraformStack
from mlkit_workloads import __version__ as workloads_version

from envconfig.environment import EnvironmentConfig
from envconfig.naming import wheel_filename

from .platform_stack import PlatformStack
from .release_gate import ReleaseExpectation, ReleaseGate
from .serving_stack import ServingStack
from envconfig.synth_output import stack_files
from .workspace_stack import WorkspaceStack

REPO = Path(__file__).resolve().parent.parent  # the git checkout the stacks are synthesized from
StackHook = Callable[[TerraformStack, EnvironmentConfig], None]


def stack_directory(outdir: str | Path, stack_name: str) -> Path:
    """Where cdktn writes a stack (and where Terraform runs for it)."""
    return Path(outdir).resolve() / "stacks" / stack_name


def default_wheel_dir(outdir: str | Path) -> Path:
    return Path(outdir).resolve().parent / "dist"


def wheel_source(outdir: str | Path, stack_name: str, wheel_dir: Path | None = None) -> str:
    """The wheel's path relative to the stack directory (Terraform's working directory)."""
    wheel = (wheel_dir or default_wheel_dir(outdir)).resolve() / wheel_filename(workloads_version)
    return os.path.relpath(wheel, stack_directory(outdir, stack_name))


def build_app(configs: dict[str, EnvironmentConfig], outdir: str, stack_hook: StackHook | None = None,
              wheel_dir: Path | None = None, releases: dict[str, ReleaseExpectation] | None = None) -> App:
    """Build (not synthesize) the app. ``stack_hook(stack, cfg)`` runs for each stack once it is built.

    ``releases``: per prod-like environment what its release lock expects (mlkit.ops.release reads the
    locks); its stacks then refuse, at ``terraform plan``, to deploy anything the lock does not pin
    (stacks/release_gate.py). The synth service (mlkit.ops.synth) passes them."""
    app = App(outdir=str(outdir))
    for name in sorted(configs):
        cfg = configs[name]
        if not cfg.is_cloud:
            continue
        release = (releases or {}).get(name)
        wheels = {n: wheel_source(outdir, n, wheel_dir) for n in
                  (cfg.names.platform_stack, cfg.names.workspace_stack, cfg.names.serving_stack)}
        platform = PlatformStack(app, cfg)
        workspace = WorkspaceStack(app, cfg, platform, wheels[cfg.names.workspace_stack])
        serving = ServingStack(app, cfg, platform, release, wheels[cfg.names.serving_stack])
        if release is not None:
            for stack in (platform, workspace):
                ReleaseGate(stack, "release-gate", release, wheel_source=wheels[stack.node.id])
        if stack_hook is not None:
            for stack in (platform, workspace, serving):
                stack_hook(stack, cfg)
    return app


@dataclass(frozen=True)
class StackSummary:
    name: str
    path: Path
    resources: int
    data_sources: int
    outputs: int


def summarize(outdir: str | Path, only: set[str] | None = None) -> list[StackSummary]:
    """What a synth wrote, stack by stack, read back from the manifest and the stack JSON."""
    out = []
    for name, path in sorted(stack_files(Path(outdir)).items()):
        if only is not None and name not in only:
            continue
        doc = json.loads(path.read_text())
        out.append(StackSummary(
            name=name, path=path,
            resources=sum(len(v) for v in doc.get("resource", {}).values()),
            data_sources=sum(len(v) for v in doc.get("data", {}).values()),
            outputs=len(doc.get("output", {})),
        ))
    return out


def stack_names(configs: dict[str, EnvironmentConfig]) -> list[str]:
    return [n for cfg in configs.values() if cfg.is_cloud
            for n in (cfg.names.platform_stack, cfg.names.workspace_stack, cfg.names.serving_stack)]
