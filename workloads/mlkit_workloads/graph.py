"""The job graph, defined once.

The stacks turn it into ``databricks_job`` resources (one ``python_wheel_task`` per task,
``depends_on`` from ``depends_on``), and the local runner executes the same graph in
dependency order. Keep this module free of heavy imports: the stacks import it at synth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PACKAGE_NAME = "mlkit_workloads"


@dataclass(frozen=True)
class Task:
    key: str
    entry_point: str  # a [project.scripts] name of the workloads wheel
    depends_on: tuple[str, ...] = ()
    description: str = ""
    # Parameters beyond the common ones (--env, --settings, --run-id are added by the caller).
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    tasks: tuple[Task, ...]
    # Key of the schedule in the environment's ``jobs`` section.
    schedule_key: str = field(default="")

    def task(self, key: str) -> Task:
        for t in self.tasks:
            if t.key == key:
                return t
        raise KeyError(f"job {self.name!r} has no task {key!r}")

    def topological_order(self) -> list[Task]:
        """Tasks in an order where every task comes after the tasks it depends on."""
        done: list[str] = []
        remaining = {t.key: t for t in self.tasks}
        while remaining:
            ready = [k for k, t in remaining.items() if all(d in done for d in t.depends_on)]
            if not ready:
                raise ValueError(f"job {self.name!r}: dependency cycle among {sorted(remaining)}")
            for k in ready:  # keep definition order among ready tasks: deterministic
                done.append(k)
                del remaining[k]
        return [self.task(k) for k in done]


FORECAST = Job(
    name="forecast",
    description="Many-models demand forecast: ingest, train one model per group, gate, batch score, export for BI.",
    schedule_key="forecast",
    tasks=(
        Task("ingest", "mlkit-ingest", (), "Validate the source and append it to a versioned Delta table.",
             ("--dataset", "forecast")),
        Task("train_many", "mlkit-train-many", ("ingest",), "One tuned XGBoost model per group, bundled behind a routing meta model."),
        Task("promote", "mlkit-promote", ("train_many",), "Apply the promotion gates; move the champion alias on pass.",
             ("--model", "forecast")),
        Task("score", "mlkit-score", ("promote",), "Score the latest data with the champion, by group."),
        Task("export", "mlkit-export", ("score",), "The champion's predictions into the BI database (PostgreSQL): "
             "staging + MERGE in one transaction, a re-run of a version replaces its rows."),
    ),
)

CLASSIFIER = Job(
    name="classifier",
    description="Imbalanced binary classifier with nested tracked tuning runs and a promotion gate.",
    schedule_key="classifier",
    tasks=(
        Task("ingest", "mlkit-ingest", (), "Validate the source and append it to a versioned Delta table.",
             ("--dataset", "classifier")),
        Task("train_classifier", "mlkit-train-classifier", ("ingest",), "Pipeline + XGBoost, Optuna search with one child run per trial."),
        Task("promote", "mlkit-promote", ("train_classifier",), "Apply the classifier gates; move the champion alias on pass.",
             ("--model", "classifier")),
    ),
)

MONITOR = Job(
    name="monitor",
    description="Drift of the served inferences vs the serving version's training data: PSI per feature, "
                "prediction distributions per group; monitoring table + report.",
    schedule_key="monitor",
    tasks=(
        Task("monitor", "mlkit-monitor", (), "PSI per feature and per-group prediction drift; flags above thresholds."),
    ),
)

JOBS: dict[str, Job] = {j.name: j for j in (FORECAST, CLASSIFIER, MONITOR)}
