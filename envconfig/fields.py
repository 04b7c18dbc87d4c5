"""Field checks several sections share: Entra ID / Azure identifiers (UUIDs), min/max pairs."""

from __future__ import annotations

import re

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def check_uuid(value: str | None, what: str = "UUID") -> str | None:
    """``value`` unchanged when it is unset or a UUID; else the ValueError pydantic reports at the field."""
    if value is not None and not re.fullmatch(UUID, value):
        raise ValueError(f"{value!r} is not {what}")
    return value


def check_not_above(model, low: str, high: str) -> None:
    """``model.low`` <= ``model.high`` (a pool's min and max, say), else the ValueError naming both."""
    if getattr(model, low) > getattr(model, high):
        raise ValueError(f"{low} ({getattr(model, low)}) is above {high} ({getattr(model, high)})")
