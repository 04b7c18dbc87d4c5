"""Errors the jobs raise on purpose. Each one is a message for a person, not a traceback.

The entry points and the local runner print ``str(error)`` and exit non-zero; anything else
that escapes a task is a bug and keeps its traceback.
"""

from __future__ import annotations


class WorkloadError(Exception):
    """A problem with the input or the environment that the user can fix."""


class DataError(WorkloadError):
    """The source data does not match the column mapping. Raised before anything is written."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) with the input, nothing was written:\n{lines}")


class GateFailed(WorkloadError):
    """The promotion gates rejected the new model version. The champion was left untouched."""

    def __init__(self, model: str, version: str, reasons: list[str]):
        self.model = model
        self.version = version
        self.reasons = reasons
        lines = "\n".join(f"  - {r}" for r in reasons)
        super().__init__(f"{model} version {version} was not promoted (champion unchanged):\n{lines}")


class TrackingUnreachable(WorkloadError):
    def __init__(self, uri: str, detail: str):
        super().__init__(f"the MLflow tracking server at {uri} is not reachable ({detail})")
