"""Environment settings of the optional systems: Data Factory orchestration and the Azure ML workspace.

Both are off unless the environment file turns them on (staging and prod do). The models
forbid unknown keys like every section of the schema; :func:`orchestration_problems` holds the
checks that need the rest of the environment (the job graph, the job's source, its schedule).
"""

from __future__ import annotations

import re
from typing import Any

from mlkit_workloads.graph import JOBS, RAW_PATH
from mlkit_workloads.strict import Strict
from pydantic import Field, field_validator

from .adf_schedule import ScheduleError, recurrence
from .errors import FieldProblem
from .naming import OPTIONAL_RULES, NamingError


SQL_SERVER_ID = (r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[^/]+/providers/Microsoft\.Sql/servers/"
                 r"[a-z0-9][a-z0-9-]{0,61}[a-z0-9]")


class SqlTable(Strict):
    """One source table and the folder of the raw container its copies land in."""

    name: str = Field(description="schema.table in the source database, e.g. dbo.sales")
    folder: str = Field(description="folder of the raw container; each copy writes <folder>/load_date=YYYY-MM-DD/")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"{v!r} is not schema.table (letters, digits, '_')")
        return v

    @field_validator("folder")
    @classmethod
    def _folder(cls, v: str) -> str:
        v = v.strip("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*", v):
            raise ValueError(f"{v!r} is not a relative folder of lowercase letters, digits, '_' and '-'")
        return v


class SqlSource(Strict):
    """The Azure SQL database the factory copies from (reference 000's source), by managed identity."""

    server_id: str = Field(description="ARM id of the Azure SQL server: the managed private endpoint's target and "
                                       "the host name (<server>.database.windows.net)")
    database: str
    tables: list[SqlTable] = Field(min_length=1)

    @field_validator("server_id")
    @classmethod
    def _server(cls, v: str) -> str:
        if not re.fullmatch(SQL_SERVER_ID, v):
            raise ValueError(f"{v!r} is not an Azure SQL server id (/subscriptions/<id>/resourceGroups/<rg>/providers/"
                             "Microsoft.Sql/servers/<name>)")
        return v

    @property
    def server_name(self) -> str:
        return self.server_id.rsplit("/", 1)[1]

    @property
    def host(self) -> str:
        return f"{self.server_name}.database.windows.net"


class DataFactory(Strict):
    """Azure Data Factory as the orchestrator: copy the source to raw, then run the job (reference 000/002)."""

    enabled: bool = False
    source: SqlSource | None = None
    jobs: list[str] = Field(default_factory=lambda: ["forecast"],
                            description="jobs of the graph the factory runs (their Databricks schedule is then off)")
    copy_retries: int = Field(default=2, ge=0, le=10, description="retries of each copy activity")
    job_retries: int = Field(default=0, ge=0, le=10,
                             description="retries of the whole Databricks job (its tasks retry on their own: "
                                         "jobs.max_retries)")
    retry_interval_seconds: int = Field(default=300, ge=30, le=86400)
    copy_timeout_minutes: int = Field(default=60, ge=1, le=1440)

    @field_validator("jobs")
    @classmethod
    def _jobs(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(JOBS))
        if unknown:
            raise ValueError(f"no job named {', '.join(unknown)}; jobs are {', '.join(sorted(JOBS))}")
        without = [j for j in v if RAW_PATH not in JOBS[j].parameters]
        if without:
            raise ValueError(f"job(s) {', '.join(without)} take no {RAW_PATH.name} parameter: the factory has no "
                             "way to tell them which copy to ingest")
        return v


class MlWorkspace(Strict):
    """Azure ML workspace (reference 004): the model registry promotion also registers into, with its own
    Application Insights on the environment's Log Analytics workspace."""

    enabled: bool = False
    register_models: bool = Field(default=True, description="mlkit promote registers the approved versions "
                                                            "in this workspace's registry too")
    application_insights_retention_days: int = Field(default=90)

    @field_validator("application_insights_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        allowed = (30, 60, 90, 120, 180, 270, 365, 550, 730)  # azurerm_application_insights retention_in_days
        if v not in allowed:
            raise ValueError(f"{v} is not an Application Insights retention ({', '.join(map(str, allowed))})")
        return v


def check(cfg: Any) -> None:
    """Cross-section checks of the optional systems; raises the first FieldProblem. ``cfg`` is the
    EnvironmentConfig being validated (not imported: it imports this module)."""
    problems = orchestration_problems(cfg, cfg.data_factory) + ml_workspace_problems(cfg)
    if problems:
        raise FieldProblem(*problems[0])


def ml_workspace_problems(cfg: Any) -> list[tuple[str, str]]:
    if not cfg.ml_workspace.enabled:
        return []
    if not cfg.is_cloud:
        return [("ml_workspace.enabled", "a local environment has no Azure ML workspace (the local MLflow server is "
                                         "its registry)")]
    return _names(cfg, ("ml_workspace", "ml_storage_account", "application_insights"))


def _names(cfg: Any, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """Names of a system that is on must follow Azure's rules (checked only then: an environment
    without it keeps every prefix that was valid before)."""
    try:
        for kind in kinds:
            OPTIONAL_RULES[kind].check(getattr(cfg.names, kind))
    except NamingError as e:
        return [(e.field, str(e))]
    return []


def orchestration_problems(cfg: Any, data_factory: DataFactory) -> list[tuple[str, str]]:
    """(field, message) for a factory the rest of the environment cannot support."""
    if not data_factory.enabled:
        return []
    if not cfg.is_cloud:
        return [("data_factory.enabled", "a local environment has no Data Factory (mlkit run is the orchestrator)")]
    out: list[tuple[str, str]] = _names(cfg, ("data_factory",))
    if data_factory.source is None:
        out.append(("data_factory.source", "an enabled Data Factory needs the source database to copy from"))
        return out
    folders = {t.folder for t in data_factory.source.tables}
    for job in data_factory.jobs:
        schedule = cfg.jobs.schedules.get(JOBS[job].schedule_key)
        if schedule is None:
            out.append((f"jobs.schedules.{job}", f"the factory's trigger for {job} is this job's schedule: set one"))
        else:
            try:
                recurrence(schedule.quartz_cron, schedule.timezone)
            except ScheduleError as e:
                out.append((f"jobs.schedules.{job}", f"as a Data Factory trigger: {e}"))
        source = getattr(cfg.workloads, job).source
        if source.format != "parquet" or source.container != "raw" or (source.path or "").strip("/") not in folders:
            out.append((f"workloads.{job}.source", f"the factory copies to raw/<folder>/load_date=.../ for "
                        f"{', '.join(sorted(folders))}: the {job} job's source must be format parquet, container raw, "
                        "path one of those folders"))
    return out
