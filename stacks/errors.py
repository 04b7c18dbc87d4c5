"""The one error the stacks raise for input the config schema let through but Azure would reject."""

from __future__ import annotations


class StackInputError(ValueError):
    """Props that would fail at apply time. ``where`` names the environment field to change."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where
