"""A Docker build context as a tar.gz, filtered by the context's ``.dockerignore``.

ACR Tasks builds from an uploaded archive, so the filtering Docker's client would do happens
here, with Docker's rules (moby ``patternmatcher``): patterns are matched against the path
relative to the context, ``*``/``?`` stop at ``/``, ``**`` spans directories, a ``!`` line
re-includes, the last matching line wins, and a path also matches when one of its parent
directories does. The Dockerfile itself is always sent (Docker does the same), even when the
ignore file excludes it, because the builder has to read it.
"""

from __future__ import annotations

import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from envconfig.errors import UserError


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a '!' line: re-include what matches
    regex: re.Pattern

    def match(self, rel: str) -> bool:
        if self.regex.fullmatch(rel):
            return True
        parts = rel.split("/")
        return any(self.regex.fullmatch("/".join(parts[:i])) for i in range(1, len(parts)))


def _to_regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # '**/' also matches no directory at all
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"unterminated character class in {pattern!r}")
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def read_dockerignore(context: Path) -> list[Pattern]:
    path = Path(context) / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        body = line[1:].strip() if exclusion else line
        body = os.path.normpath(body).lstrip("/") if body else body
        if not body or body == ".":
            continue
        try:
            patterns.append(Pattern(body, exclusion, _to_regex(body)))
        except ValueError as e:
            raise UserError(f"{path}:{n}: {e}", exit_code=1) from None
    return patterns


def ignored(rel: str, patterns: list[Pattern]) -> bool:
    matched = False
    for p in patterns:
        if p.exclusion == matched and p.match(rel):  # only a pattern that can flip the verdict
            matched = not p.exclusion
    return matched


def _may_reinclude(rel_dir: str, patterns: list[Pattern]) -> bool:
    """Could a '!' line re-include something below an ignored directory? (else skip the walk)."""
    prefix = rel_dir + "/"
    return any(p.exclusion and (p.text + "/").startswith(prefix) for p in patterns)


def context_files(context: Path, dockerfile: str) -> list[str]:
    """Relative paths (files and symlinks) that go into the archive, sorted; the Dockerfile included."""
    context = Path(context)
    if not (context / dockerfile).is_file():
        raise UserError(f"{context / dockerfile}: Dockerfile not found (build context {context})", exit_code=1)
    patterns = read_dockerignore(context)
    out = set()
    for root, dirs, files in os.walk(context):
        rel_root = os.path.relpath(root, context)
        rel_root = "" if rel_root == "." else rel_root + "/"
        keep = []
        for d in sorted(dirs):
            rel = rel_root + d
            if os.path.islink(os.path.join(root, d)):
                files.append(d)  # a symlink to a directory travels as the link, as Docker sends it
            elif not ignored(rel, patterns) or _may_reinclude(rel, patterns):
                keep.append(d)
        dirs[:] = keep
        out.update(rel_root + f for f in files if not ignored(rel_root + f, patterns))
    out.add(Path(dockerfile).as_posix())
    return sorted(out)


def pack(context: Path, dockerfile: str, dest: BinaryIO) -> list[str]:
    """Write the context as tar.gz into ``dest``; returns the member names."""
    names = context_files(context, dockerfile)

    def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
        # The builder needs modes, not who owned the files on the deploying machine.
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=dest, mode="w:gz") as tar:
        for name in names:
            tar.add(Path(context) / name, arcname=name, recursive=False, filter=anonymous)
    return names
