"""Two resolved environments compared field by field (`mlkit env diff`, and promotion's check that
source and target differ only where environments may)."""

from __future__ import annotations

from typing import Any


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {dotted.field: leaf}. Lists of scalars stay whole; lists of mappings index."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}"))
    else:
        out[prefix] = value
    return out


def diff_environments(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Field-by-field differences between two resolved configs, sorted by field."""
    fa, fb = flatten(a), flatten(b)
    missing = object()
    rows = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            rows.append((key, None if va is missing else va, None if vb is missing else vb))
    return rows
