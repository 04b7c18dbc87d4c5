"""Run the terraform binary per synthesized stack, in dependency order.

CDK Terrain writes ``cdktf.out/manifest.json`` (stacks with their ``dependencies``) and one
``cdk.tf.json`` per stack (read by envconfig.synth_output); terraform runs in each stack's working directory. We call the
binary directly: it needs no Node runtime and its JSON output is a stable, documented API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from envconfig.errors import UserError
from envconfig.synth_output import Stack

# Quiet, non-interactive, no telemetry: the same in CI and on a laptop.
TF_ENV = {"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 15) -> str:
        """The error part of the output (warnings before the first 'Error:' are noise here)."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        first = next((i for i, t in enumerate(text) if t.lstrip("│ ").startswith("Error:")), 0)
        return "\n".join(text[first:first + lines])


def find_terraform(explicit: str | None = None) -> str:
    path = explicit or os.environ.get("MLKIT_TERRAFORM") or shutil.which("terraform")
    if not path or not Path(path).exists():
        raise UserError("terraform not found: install Terraform >= 1.6 and put it on PATH "
                        "(or set MLKIT_TERRAFORM to the binary)", exit_code=1)
    return path


def ordered(stacks: dict[str, Stack], wanted: list[str] | None = None) -> list[Stack]:
    """``wanted`` (default: all) plus everything they depend on, dependencies first."""
    order: list[Stack] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            raise UserError(f"stack dependency cycle: {' -> '.join(chain + (name,))}", exit_code=1)
        if name not in stacks:
            raise UserError(f"stack {chain[-1] if chain else '?'!r} depends on {name!r}, "
                            "which is not in the manifest", exit_code=1)
        state[name] = "active"
        for dep in stacks[name].dependencies:
            visit(dep, chain + (name,))
        state[name] = "done"
        order.append(stacks[name])

    for name in sorted(wanted if wanted is not None else stacks):
        visit(name, ())
    return order


@dataclass
class Terraform:
    binary: str
    extra_env: dict[str, str] = field(default_factory=dict)
    log: list[Result] = field(default_factory=list)

    def run(self, stack: Stack, *args: str, check: bool = True, ok_codes: tuple[int, ...] = (0,)) -> Result:
        env = {**os.environ, **TF_ENV, **self.extra_env}
        cmd = [self.binary, *args]
        try:
            p = subprocess.run(cmd, cwd=stack.workdir, env=env, capture_output=True, text=True)
        except FileNotFoundError:
            raise UserError(f"terraform not found at {self.binary}", exit_code=1) from None
        res = Result(cmd, p.returncode, p.stdout, p.stderr)
        self.log.append(res)
        if check and p.returncode not in ok_codes:
            raise TerraformFailed(stack.name, args[0], res)
        return res

    def init(self, stack: Stack, backend_config: dict[str, str] | None = None) -> Result:
        extra = [f"-backend-config={k}={v}" for k, v in (backend_config or {}).items()]
        return self.run(stack, "init", "-input=false", "-no-color", *extra)

    def plan(self, stack: Stack, out: Path, *extra: str) -> int:
        """0 = no changes, 2 = changes (``-detailed-exitcode``); anything else raises."""
        res = self.run(stack, "plan", "-input=false", "-no-color", "-detailed-exitcode",
                       f"-out={out}", *extra, ok_codes=(0, 2))
        return res.returncode

    def show_json(self, stack: Stack, plan_file: Path | None = None) -> dict:
        args = ["show", "-json"] + ([str(plan_file)] if plan_file else [])
        return json.loads(self.run(stack, *args).stdout)

    def output_json(self, stack: Stack) -> dict:
        """The stack's outputs from its state: ``{name: {"value": ..., "sensitive": ...}}``."""
        return json.loads(self.run(stack, "output", "-json", "-no-color").stdout)

    def apply(self, stack: Stack, plan_file: Path) -> Result:
        return self.run(stack, "apply", "-input=false", "-no-color", "-auto-approve", str(plan_file))


class TerraformFailed(UserError):
    def __init__(self, stack: str, command: str, result: Result):
        self.stack, self.command, self.result = stack, command, result
        super().__init__(f"terraform {command} failed for stack {stack!r} (exit {result.returncode}):\n"
                         f"{result.tail()}", exit_code=1)
