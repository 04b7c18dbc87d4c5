"""Reading attribute values out of a construct's rendered config.

Before synthesis finishes, references are still CDK tokens: strings like ``${TfToken[TOKEN.3]}``
(or, once rendered, ``${azurerm_x.y.id}``), list tokens ``#{TfToken[...]}``, numbers encoded
as huge negative floats, and IResolvable objects (a variable's ``boolean_value``). They are "set by reference": present, value unknown.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MISSING = object()
_STRING_TOKEN = re.compile(r"\$\{|#\{TfToken\[|TfToken\[")


def is_ref(value: Any) -> bool:
    """True for a CDK token or a Terraform interpolation: a value only known at apply time."""
    if value is None or isinstance(value, (bool, int, dict)):
        return False
    if isinstance(value, str):
        return bool(_STRING_TOKEN.search(value))
    if isinstance(value, float):
        # jsii encodes number tokens as doubles around -1.8e+289.
        return abs(value) > 1e250
    if isinstance(value, list):
        return len(value) == 1 and isinstance(value[0], str) and value[0].startswith("#{")
    return True  # an IResolvable (e.g. a variable's boolean_value) that to_terraform() left unresolved


def get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """``get(cfg, "blob_properties.delete_retention_policy.days")``; single-item block lists are unwrapped."""
    cur: Any = config
    for part in dotted.split("."):
        if isinstance(cur, list) and len(cur) == 1:
            cur = cur[0]
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    if isinstance(cur, list) and len(cur) == 1 and isinstance(cur[0], dict):
        cur = cur[0]
    return cur


def has(config: dict[str, Any], dotted: str) -> bool:
    return get(config, dotted, _MISSING) is not _MISSING


def blocks(config: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A repeated block (``task``, ``job_cluster``) as a list of dicts, however it was rendered."""
    v = config.get(key)
    if v is None:
        return []
    if isinstance(v, dict):
        return [v]
    return [b for b in v if isinstance(b, dict)]


def is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def show(value: Any) -> str:
    """A value for a message: references are named as such, not as token soup."""
    if is_ref(value):
        return "a reference"
    if value is None:
        return "unset"
    return json.dumps(value)


def json_document(value: Any) -> dict[str, Any] | None:
    """A JSON-encoded attribute (a cluster policy ``definition``) as a dict, or None if it isn't one."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
