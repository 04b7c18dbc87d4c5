"""Entry points of the workloads wheel: one per task of the job graph.

Databricks runs them as python_wheel_task with ``--env NAME --settings PATH [task params]``;
the settings file is ``WorkloadSettings.model_dump(mode="json")``. The local runner calls
:func:`run_task` with the same task functions, so both paths execute the same code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

from .errors import WorkloadError
from .graph import JOBS, Task, resolve_parameters
from .runtime import Runtime
from .settings import WorkloadSettings


def _ingest(rt: Runtime, dataset: str, raw_path: str = "") -> dict:
    from . import ingest

    return ingest.run(rt, dataset, raw_path=raw_path or None)


def _train_many(rt: Runtime) -> dict:
    from . import train_many

    return train_many.run(rt)


def _promote(rt: Runtime, model: str) -> dict:
    from . import promote

    return promote.run(rt, model)


def _score(rt: Runtime) -> dict:
    from . import score

    return score.run(rt)


def _export(rt: Runtime) -> dict:
    from .export import job

    return job.run(rt)


def _train_classifier(rt: Runtime) -> dict:
    from . import train_classifier

    return train_classifier.run(rt)


def _monitor(rt: Runtime) -> dict:
    from .monitor import job

    return job.run(rt)


# entry point name -> (task function, its parameters). Must match pyproject's [project.scripts].
TASKS: dict[str, tuple[Callable[..., dict], tuple[str, ...]]] = {
    "mlkit-ingest": (_ingest, ("dataset", "raw_path")),
    "mlkit-train-many": (_train_many, ()),
    "mlkit-promote": (_promote, ("model",)),
    "mlkit-score": (_score, ()),
    "mlkit-export": (_export, ()),
    "mlkit-train-classifier": (_train_classifier, ()),
    "mlkit-monitor": (_monitor, ()),
}


def task_params(task: Task, job_values: dict[str, str] | None = None) -> dict[str, str]:
    """The graph's ``("--dataset", "forecast")`` -> ``{"dataset": "forecast"}``; job-parameter
    references (``{{job.parameters.raw_path}}``) take ``job_values`` or their default, as on Databricks."""
    p = list(resolve_parameters(task.parameters, job_values))
    if len(p) % 2 or not all(a.startswith("--") for a in p[::2]):
        raise ValueError(f"task {task.key!r}: parameters must be --name value pairs, got {p}")
    return {a[2:].replace("-", "_"): v for a, v in zip(p[::2], p[1::2])}


def run_task(entry_point: str, rt: Runtime, params: dict[str, str]) -> dict[str, Any]:
    fn, names = TASKS[entry_point]
    unknown = set(params) - set(names)
    if unknown:
        raise WorkloadError(f"{entry_point}: unknown parameter(s) {', '.join(sorted(unknown))}")
    missing = set(names) - set(params)
    if missing:
        raise WorkloadError(f"{entry_point}: missing parameter(s) {', '.join('--' + m for m in sorted(missing))}")
    return fn(rt, **params)


def task_key(entry_point: str) -> str:
    keys = {t.key for j in JOBS.values() for t in j.tasks if t.entry_point == entry_point}
    if len(keys) != 1:
        raise ValueError(f"entry point {entry_point} maps to task keys {sorted(keys)}; expected exactly one")
    return keys.pop()


def _on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def _runtime(args: argparse.Namespace, entry_point: str) -> Runtime:
    from pyspark.sql import SparkSession

    from .context import DatabricksTaskContext, LocalTaskContext
    from .tables import DeltaRsStore, SparkDeltaStore

    try:
        settings = WorkloadSettings.model_validate_json(Path(args.settings).read_text())
    except OSError as e:
        raise WorkloadError(f"cannot read settings file {args.settings}: {e.strerror}") from None
    except ValueError as e:
        raise WorkloadError(f"settings file {args.settings} is not valid workload settings:\n{e}") from None
    spark = SparkSession.builder.getOrCreate()
    root = args.tables_root or settings.tables.root
    if not root:
        raise WorkloadError("workloads.tables.root is not set in the environment (where the Delta tables live)")
    if _on_databricks():
        return Runtime(args.env, settings, spark, SparkDeltaStore(spark, root), DatabricksTaskContext(), say=print,
                       force=args.force, run_id=args.run_id or "")
    ctx_file = Path(args.context_file) if args.context_file else Path(root) / "_task_values.json"
    return Runtime(args.env, settings, spark, DeltaRsStore(root), LocalTaskContext(task_key(entry_point), ctx_file),
                   say=print, force=args.force, run_id=args.run_id or "")


def main(entry_point: str, argv: list[str] | None = None) -> int:
    _, names = TASKS[entry_point]
    parser = argparse.ArgumentParser(prog=entry_point)
    parser.add_argument("--env", required=True)
    parser.add_argument("--settings", required=True, help="JSON file: WorkloadSettings.model_dump(mode='json')")
    parser.add_argument("--tables-root", default=None, help="overrides workloads.tables.root")
    parser.add_argument("--context-file", default=None, help="off Databricks: JSON file of task values")
    parser.add_argument("--run-id", default=None, help="job run id (for the logs; Databricks passes it)")
    parser.add_argument("--force", action="store_true",
                        help="train again even on a data version already trained with the same settings")
    for n in names:
        parser.add_argument(f"--{n.replace('_', '-')}", required=True)
    args = parser.parse_args(argv)
    try:
        rt = _runtime(args, entry_point)
        result = run_task(entry_point, rt, {n: getattr(args, n) for n in names})
    except WorkloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted during {entry_point} (tables keep their last committed version)", file=sys.stderr)
        return 130
    print(result)
    return 0


def ingest() -> None:
    sys.exit(main("mlkit-ingest"))


def train_many() -> None:
    sys.exit(main("mlkit-train-many"))


def promote() -> None:
    sys.exit(main("mlkit-promote"))


def score() -> None:
    sys.exit(main("mlkit-score"))


def export() -> None:
    sys.exit(main("mlkit-export"))


def train_classifier() -> None:
    sys.exit(main("mlkit-train-classifier"))


def monitor() -> None:
    sys.exit(main("mlkit-monitor"))
