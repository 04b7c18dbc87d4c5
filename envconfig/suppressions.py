"""Policy suppressions as the environment file writes them (``suppressions:``); policies/ applies them."""

from __future__ import annotations

import datetime as dt

from mlkit_workloads.strict import Strict
from pydantic import Field, field_validator


class Suppression(Strict):
    """A waived policy finding (see policies/). The reason is required; an expired one is an error."""

    rule: str = Field(pattern=r"^(MLK-[A-Z]+-\d{3}|CKV2?_[A-Z0-9]+_\d+)$",
                      description="our rule id (MLK-ST-003) or a checkov id (CKV_AZURE_59); `mlkit check --rules`")
    target: str = Field(description="construct path, Terraform address or glob; '*' for all")
    reason: str = Field(description="why the finding is accepted (at least 10 characters)")
    expires: str | None = Field(default=None, description="YYYY-MM-DD; after this date the suppression is an error")

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if len(v.strip()) < 10:
            raise ValueError("a suppression needs a reason of at least 10 characters saying why it is accepted")
        return v.strip()

    @field_validator("expires", mode="before")
    @classmethod
    def _date(cls, v: object) -> str | None:
        if isinstance(v, dt.date):  # YAML reads an unquoted 2026-12-31 as a date
            return v.isoformat()
        if v is not None:
            try:
                dt.date.fromisoformat(str(v))
            except ValueError:
                raise ValueError(f"{v!r} is not a date (YYYY-MM-DD)") from None
        return v  # type: ignore[return-value]
