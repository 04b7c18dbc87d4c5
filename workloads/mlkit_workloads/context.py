"""Values passed between the tasks of one job run (table version, model version, ...).

On Databricks these are task values (``dbutils.jobs.taskValues``): each task sets its own,
later tasks read them by the upstream task's key. Locally the runner keeps them in memory and,
when a path is given, in a JSON file so a task started on its own can read what ran before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class TaskContext(Protocol):
    def set(self, key: str, value: Any) -> None: ...

    def get(self, task_key: str, key: str) -> Any: ...


class LocalTaskContext:
    """In-memory task values, optionally persisted to JSON (one mapping task -> key -> value)."""

    def __init__(self, current_task: str = "", path: Path | None = None):
        self.current_task = current_task
        self.path = path
        self.values: dict[str, dict[str, Any]] = {}
        if path is not None and path.is_file():
            self.values = json.loads(path.read_text())

    def for_task(self, task_key: str) -> "LocalTaskContext":
        self.current_task = task_key
        return self

    def set(self, key: str, value: Any) -> None:
        json.dumps(value)  # same restriction as Databricks task values: JSON-serialisable only
        self.values.setdefault(self.current_task, {})[key] = value
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.values, indent=2, default=str))

    def get(self, task_key: str, key: str) -> Any:
        try:
            return self.values[task_key][key]
        except KeyError:
            raise KeyError(f"no task value {key!r} from task {task_key!r}; did {task_key!r} run first?") from None


class DatabricksTaskContext:
    """``dbutils.jobs.taskValues``; only exists inside a Databricks job run (not testable here)."""

    def __init__(self) -> None:
        from databricks.sdk.runtime import dbutils  # provided by the Databricks runtime

        self._tv = dbutils.jobs.taskValues

    def set(self, key: str, value: Any) -> None:
        self._tv.set(key=key, value=value)

    def get(self, task_key: str, key: str) -> Any:
        return self._tv.get(taskKey=task_key, key=key)
