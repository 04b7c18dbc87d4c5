"""The job graph, defined once.

The stacks turn it into ``databricks_job`` resources (one ``python_wheel_task`` per task,
``depends_on`` from ``depends_on``), and the local runner executes the same graph in
dependency order. Keep this module free of heavy imports: the stacks import it at synth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PACKAGE_NAME = "mlkit_workloads"


@dataclass(frozen=True)
class JobParameter:
    """A value given to a whole job run (Databricks job parameter), referenced by its tasks'
    parameters as ``{{job.parameters.<name>}}``; the local runner substitutes it the same way."""

    name: str
    default: str = ""
    description: str = ""

    @property
    def reference(self) -> str:
        return "{{job.parameters.%s}}" % self.name


# The raw-zone folder ingest reads: an orchestrator (Data Factory) passes the load_date partition
# it just copied; empty means the source configured in the environment.
RAW_PATH = JobParameter("raw_path", "", "raw-zone folder to ingest (a load_date=YYYY-MM-DD partition); "
                                        "empty: the configured source")
JOB_PARAMETERS: dict[str, JobParameter] = {p.name: p for p in (RAW_PATH,)}


def resolve_parameters(parameters: tuple[str, ...], values: dict[str, str] | None = None) -> tuple[str, ...]:
    """A task's parameters with each job-parameter reference replaced by its value (or default)."""
    by_reference = {p.reference: p for p in JOB_PARAMETERS.values()}
    return tuple((values or {}).get(by_reference[a].name, by_reference[a].default) if a in by_reference else a
                 for a in parameters)


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

    @property
    def parameters(self) -> tuple[JobParameter, ...]:
        """The job parameters its tasks reference (each a Databricks job parameter with its default)."""
        used = {a for t in self.tasks for a in t.parameters}
        return tuple(p for p in JOB_PARAMETERS.values() if p.reference in used)

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
             ("--dataset", "forecast", "--raw-path", RAW_PATH.reference)),
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
             ("--dataset", "classifier", "--raw-path", RAW_PATH.reference)),
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
