"""The mistakes a user can fix, as exceptions every layer raises and the CLI prints (never a traceback).

- :class:`ConfigProblem` / :class:`ConfigError`: what is wrong in the environment files, each
  problem naming file, dotted field and (where YAML tells us) line.
- :class:`FieldProblem`: raised by a section's cross-field check to name the field it is about.
- :class:`UserError`: any other mistake (a missing file, a refused operation), with its exit code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '<file>'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FieldProblem(ValueError):
    """A cross-field check's error that names the field it is about (pydantic reports the whole
    model's checks at the model, which would print as the file with no field and no line)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class UserError(Exception):
    """A mistake the user can fix. Printed as a message, never as a traceback."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
