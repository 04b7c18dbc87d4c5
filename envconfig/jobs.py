"""Databricks job settings: timeouts, retries, concurrency, and the Quartz schedules per job of the graph."""

from __future__ import annotations

from mlkit_workloads.strict import Strict
from pydantic import Field, field_validator

from .cron import CronError, validate_quartz_cron


class Schedule(Strict):
    quartz_cron: str
    timezone: str = "UTC"
    paused: bool = False

    @field_validator("quartz_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            validate_quartz_cron(v)
        except CronError as e:
            raise ValueError(str(e)) from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. 'Europe/Amsterdam', 'UTC')") from None
        return v


class Jobs(Strict):
    timeout_seconds: int = Field(default=4 * 3600, ge=60)
    max_concurrent_runs: int = Field(default=1, ge=1, le=1000)
    max_retries: int = Field(default=1, ge=0, le=10)
    schedules: dict[str, Schedule] = Field(default_factory=dict)

    @field_validator("schedules")
    @classmethod
    def _known_jobs(cls, v: dict[str, Schedule]) -> dict[str, Schedule]:
        from mlkit_workloads.graph import JOBS

        unknown = sorted(set(v) - set(JOBS))
        if unknown:
            raise ValueError(f"no job named {', '.join(unknown)}; jobs are {', '.join(sorted(JOBS))}")
        return v
