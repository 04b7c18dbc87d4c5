"""The one reader of a synth's output directory (cdktn's layout), and its two edits.

``<outdir>/manifest.json`` names every stack with its working directory, the path of its
``cdk.tf.json`` and the stacks it depends on; terraform runs in the working directory. Read here
for terraform and deploy, the graph and diagram, the synth summary, the policy report and gate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envconfig.errors import UserError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Stack:
    name: str
    workdir: Path
    dependencies: tuple[str, ...] = ()
    synthesized: Path | None = None  # its cdk.tf.json (the manifest's synthesizedStackPath)

    @property
    def file(self) -> Path:
        return self.synthesized or self.workdir / "cdk.tf.json"

    @property
    def config(self) -> dict[str, Any]:
        try:
            return json.loads(self.file.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{self.file}: cannot read the synthesized stack ({e}); re-synth", exit_code=1) from None

    @property
    def backend(self) -> tuple[str, dict]:
        """(type, settings) of the backend block synthesized into the stack ('local' if none)."""
        backends = self.config.get("terraform", {}).get("backend") or {}
        if not backends:
            return "local", {}
        kind, settings = next(iter(backends.items()))
        return kind, dict(settings)

    @property
    def outputs(self) -> dict[str, Any]:
        return self.config.get("output") or {}


def manifest_entries(outdir: Path) -> dict[str, dict]:
    """The manifest's raw stack entries; {} when there is none or it is unreadable (a synth rewrites it)."""
    manifest = Path(outdir) / MANIFEST
    try:
        stacks = json.loads(manifest.read_text()).get("stacks", {}) if manifest.is_file() else {}
    except (json.JSONDecodeError, AttributeError):
        return {}
    return {n: e for n, e in stacks.items() if isinstance(e, dict)} if isinstance(stacks, dict) else {}


def read_stacks(outdir: Path) -> dict[str, Stack]:
    """Every stack of the manifest; a missing or broken manifest is the user's to fix (UserError)."""
    manifest = Path(outdir) / MANIFEST
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise UserError(f"{manifest}: not found; run `mlkit synth` first (or pass the synth output dir)",
                        exit_code=1) from None
    except json.JSONDecodeError as e:
        raise UserError(f"{manifest}: not valid JSON ({e})", exit_code=1) from None
    stacks = {}
    for name, s in (data.get("stacks") or {}).items():
        try:
            path = s.get("synthesizedStackPath")
            stacks[name] = Stack(name, Path(outdir) / s["workingDirectory"], tuple(s.get("dependencies") or ()),
                                 Path(outdir) / path if path else None)
        except (KeyError, TypeError, AttributeError):
            raise UserError(f"{manifest}: stack {name!r} has no workingDirectory", exit_code=1) from None
    return stacks


def stack_files(outdir: Path) -> dict[str, Path]:
    """Stack name -> its synthesized cdk.tf.json; {} when nothing is synthesized."""
    return {name: Path(outdir) / entry["synthesizedStackPath"]
            for name, entry in manifest_entries(outdir).items() if "synthesizedStackPath" in entry}


def has_stacks(outdir: Path, names: list[str]) -> bool:
    """Whether every one of ``names`` is in the manifest with its cdk.tf.json on disk."""
    files = stack_files(outdir)
    return all(n in files and files[n].is_file() for n in names)


def load_configs(outdir: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The Terraform JSON of each of ``names``."""
    files = stack_files(outdir)
    missing = [n for n in names if n not in files]
    if missing:
        raise UserError(f"{Path(outdir) / MANIFEST} has no stack {', '.join(missing)}; synthesize it first")
    return {n: json.loads(files[n].read_text()) for n in names}


def remove_stacks(outdir: Path, names: list[str]) -> None:
    """Delete stacks' directories and their manifest entries (an environment the policy gate refused)."""
    import shutil

    if not names:
        return
    outdir = Path(outdir)
    manifest = outdir / MANIFEST
    doc = json.loads(manifest.read_text()) if manifest.is_file() else {"stacks": {}}
    for name in names:
        entry = doc.get("stacks", {}).pop(name, None)
        folder = outdir / (entry["workingDirectory"] if entry else f"stacks/{name}")
        if folder.resolve().is_relative_to(outdir.resolve()) and folder.is_dir():
            shutil.rmtree(folder)
    if manifest.is_file():
        manifest.write_text(json.dumps(doc, indent=2) + "\n")


def other_stacks(outdir: Path, mine: set[str], envs: set[str]) -> dict[str, dict]:
    """Manifest entries of stacks a synth of ``envs`` does not write (other environments), still on disk.

    cdktn rewrites manifest.json with the app's stacks only, so `mlkit synth --env dev` used to drop
    staging and prod from it although their stack directories were still there."""
    return {name: entry for name, entry in manifest_entries(outdir).items()
            if name not in mine and not any(name.startswith(f"{e}-") for e in envs)
            and (Path(outdir) / str(entry.get("synthesizedStackPath", ""))).is_file()}


def keep_in_manifest(outdir: Path, kept: dict[str, dict]) -> None:
    """Put ``kept`` entries (from :func:`other_stacks`) back into the manifest cdktn just rewrote."""
    if not kept:
        return
    manifest = Path(outdir) / MANIFEST
    doc = json.loads(manifest.read_text())
    doc["stacks"] = dict(sorted({**kept, **doc["stacks"]}.items()))
    manifest.write_text(json.dumps(doc, indent=2) + "\n")
