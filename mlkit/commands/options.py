"""Options several commands share, defined once (same flag, default and help everywhere)."""

from __future__ import annotations

import typer

from envconfig.loader import DEFAULT_DIR

ENVIRONMENTS = typer.Option(DEFAULT_DIR, "--environments", help="directory of environment files")
