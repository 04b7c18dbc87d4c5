"""azure-mgmt-datafactory's own models as the referee of the Data Factory JSON the stacks generate.

The SDK (10.x) models are lenient mappings: they keep keys they do not know. ``strict`` walks the
deserialized model and fails on any key its class does not declare, and on a polymorphic type
(an activity's or a linked service's ``type``) that maps to no subclass: a misspelt field or type
would otherwise pass silently and be refused by Azure at deploy time. The SDK's discriminators are
nested (Activity -> ExecutionActivity -> DatabricksJobActivity) and its own deserializer stops at
the first level, so the walk resolves a ``type`` through every level.
"""

from __future__ import annotations

from typing import Any

from azure.mgmt.datafactory._utils.model_base import Model


def resolve(cls: type[Model], type_name: str) -> type[Model] | None:
    """The class a discriminator value names, looked up through nested discriminator levels."""
    queue, seen = [cls], set()
    while queue:
        c = queue.pop(0)
        mapping = c.__dict__.get("__mapping__") or getattr(c, "__mapping__", {})
        if type_name in mapping and mapping[type_name] is not c:
            return mapping[type_name]
        for sub in mapping.values():
            if sub not in seen and sub is not c:
                seen.add(sub)
                queue.append(sub)
    return None


def strict(cls: type[Model], data: dict[str, Any], where: str = "") -> Model:
    obj = cls(data)
    problems: list[str] = []
    _walk(obj, where or cls.__name__, problems)
    if problems:
        raise AssertionError("not in azure-mgmt-datafactory's models:\n  " + "\n  ".join(problems))
    return obj


def _walk(obj: Any, where: str, problems: list[str]) -> None:
    if isinstance(obj, Model):
        cls = type(obj)
        if hasattr(cls, "__mapping__") and isinstance(obj.get("type"), str):
            sub = resolve(cls, obj["type"])
            if sub is None:
                problems.append(f"{where}: type {obj['type']!r} is no {cls.__name__} the SDK knows")
                return
            obj, cls = sub(dict(obj)), sub
        fields = {rf._rest_name: attr for attr, rf in cls._attr_to_rest_field.items()}
        for key in obj.keys():
            if key not in fields:
                problems.append(f"{where}.{key}: {cls.__name__} has no such field")
                continue
            _walk(getattr(obj, fields[key]), f"{where}.{key}", problems)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _walk(v, f"{where}[{i}]", problems)


def typed(cls: type[Model], item: Model) -> Model:
    """``item`` as the subclass its ``type`` names (the SDK itself stops at the first level)."""
    sub = resolve(cls, item["type"])
    assert sub is not None, f"type {item['type']!r} is no {cls.__name__} the SDK knows"
    return sub(dict(item))
