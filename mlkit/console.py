"""Shared terminal output: one rich console, and how user mistakes are reported."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console

from envconfig.errors import ConfigError, UserError

console = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # paths stay copyable


@contextmanager
def user_errors(exit_code: int | None = None) -> Iterator[None]:
    """Turn ConfigError/UserError into a readable message and an exit code.

    ``exit_code`` overrides the code for both, for commands whose codes mean something else
    (``mlkit drift``: 2 is "drift found", so every error must be 1).
    """
    try:
        yield
    except ConfigError as e:
        err.print(f"[bold red]error:[/] {len(e.problems)} problem(s) in the environment files:")
        for p in e.problems:
            err.print(f"  {p}", markup=False)
        sys.exit(exit_code or 2)
    except UserError as e:
        err.print("[bold red]error:[/] " + _escape(str(e)))
        sys.exit(exit_code or e.exit_code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
