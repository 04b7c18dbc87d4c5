"""The base of every settings model: an unknown key is an error that names its field, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # A docstring under a field is its description in the JSON schema (editors, `mlkit env schema`).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
