"""Entra ID and Azure identifiers as the schema checks them (object ids, application ids, UUIDs)."""

from __future__ import annotations

import re

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def check_uuid(value: str | None, what: str = "UUID") -> str | None:
    """``value`` unchanged when it is unset or a UUID; else the ValueError pydantic reports at the field."""
    if value is not None and not re.fullmatch(UUID, value):
        raise ValueError(f"{value!r} is not {what}")
    return value
