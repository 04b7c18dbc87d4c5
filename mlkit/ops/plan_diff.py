"""Attribute-level differences between the ``before`` and ``after`` of one Terraform change.

What an on-call engineer needs from a diff, and what a naive leaf walk gets wrong:
- values marked in ``before_sensitive`` / ``after_sensitive`` never leave this module in clear:
  every value returned (leaf or whole block) is masked by both sides' marks;
- lists of objects are compared by their identity (``task_key``, the principal, ``name``...),
  so a re-ordered list with one new grant gives one "reordered" row and one "added" row,
  not a row per index;
- a string that holds JSON on both sides (policy definitions, ADF activities, annotations) is
  compared as JSON: other whitespace or key order is "reformatted", not a change;
- null and an empty string/list/map on the other side is "null-or-empty", not a change.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
# Fields that name a list element, most specific first. A field is used only when every
# element on both sides has a distinct, non-empty, non-sensitive scalar value for it.
IDENTITY_FIELDS = ("task_key", "job_cluster_key", "environment_key", "principal", "object_id", "name", "key",
                   "display_name")
# Databricks ACL entries name their principal in one of three fields.
PRINCIPAL_FIELDS = ("user_name", "group_name", "service_principal_name")


@dataclass(frozen=True)
class AttrDiff:
    path: str
    before: Any  # masked
    after: Any   # masked
    change: str  # changed | added | removed | reordered | reformatted | null-or-empty


def attribute_diffs(change: dict[str, Any]) -> list[AttrDiff]:
    return list(_diff("", change.get("before"), change.get("after"), change.get("before_sensitive"),
                      change.get("after_sensitive"), change.get("after_unknown")))


def mask(value: Any, marks: Any) -> Any:
    """``value`` with every part marked sensitive replaced by ``(sensitive)``."""
    if marks is True:
        return SENSITIVE if value is not None else None
    if isinstance(value, dict) and isinstance(marks, dict):
        return {k: mask(v, marks.get(k, False)) for k, v in value.items()}
    if isinstance(value, list) and isinstance(marks, list):
        return [mask(v, marks[i] if i < len(marks) else False) for i, v in enumerate(value)]
    return value


def _marked(marks: Any, key: Any) -> Any:
    if isinstance(marks, dict):
        return marks.get(key, False)
    if isinstance(marks, list):
        return marks[key] if isinstance(key, int) and key < len(marks) else False
    return marks


def _any_true(marks: Any) -> bool:
    if marks is True:
        return True
    if not marks:  # False, None, {}, []: the usual case
        return False
    for v in marks.values() if isinstance(marks, dict) else marks if isinstance(marks, list) else ():
        if _any_true(v):
            return True
    return False


def empty(v: Any) -> bool:
    """null, "", [] or {}: nothing set."""
    return v is None or v == "" or v == [] or v == {}


def _json(text: str) -> Any:
    s = text.strip()
    if not s or s[0] not in "[{":
        return None
    try:
        return json.loads(s)
    except ValueError:
        return None


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _diff(path: str, b: Any, a: Any, bs: Any, as_: Any, unk: Any) -> Iterator[AttrDiff]:
    if unk is True:
        if b is not None:
            yield AttrDiff(path, mask(b, bs), UNKNOWN, "changed")
        return
    if bs is True or as_ is True:  # a secret: say that it changed, never what it is
        if b != a:
            yield AttrDiff(path, mask(b, True), mask(a, True),
                           "added" if b is None else "removed" if a is None else "changed")
        return
    if b == a and not _any_true(unk):
        return
    if empty(b) and empty(a):
        yield AttrDiff(path, b, a, "null-or-empty")
        return
    if empty(b) or empty(a):  # a whole block appeared or went: one row, not one per leaf
        yield AttrDiff(path, mask(b, bs), mask(a, as_), "added" if empty(b) else "removed")
        return
    if isinstance(b, str) and isinstance(a, str):
        jb, ja = _json(b), _json(a)
        if jb is not None and ja is not None:
            if jb == ja:
                yield AttrDiff(path, b, a, "reformatted")
            else:
                yield from _diff(path, jb, ja, False, False, False)
            return
    if isinstance(b, dict) and isinstance(a, dict):
        for k in sorted(set(b) | set(a)):
            yield from _diff(_join(path, k), b.get(k), a.get(k), _marked(bs, k), _marked(as_, k), _marked(unk, k))
        return
    if isinstance(b, list) and isinstance(a, list):
        yield from _diff_list(path, b, a, bs, as_, unk)
        return
    yield AttrDiff(path, mask(b, bs), mask(a, as_), "changed")


def _diff_list(path: str, b: list, a: list, bs: Any, as_: Any, unk: Any) -> Iterator[AttrDiff]:
    label = None if _any_true(unk) else _identity(b, a, bs, as_)
    if label is None and (_any_true(unk) or len(b) == len(a) == 1):  # positions are what we know
        for i in range(max(len(b), len(a))):
            yield from _diff(f"{path}[{i}]", b[i] if i < len(b) else None, a[i] if i < len(a) else None,
                             _marked(bs, i), _marked(as_, i), _marked(unk, i))
        return
    if label is not None:
        kb = {label(e): i for i, e in enumerate(b)}
        ka = {label(e): i for i, e in enumerate(a)}
        for k in list(kb) + [k for k in ka if k not in kb]:
            p = f"{path}[{k}]"
            if k not in ka:
                yield AttrDiff(p, mask(b[kb[k]], _marked(bs, kb[k])), None, "removed")
            elif k not in kb:
                yield AttrDiff(p, None, mask(a[ka[k]], _marked(as_, ka[k])), "added")
            else:
                ib, ia = kb[k], ka[k]
                yield from _diff(p, b[ib], a[ia], _marked(bs, ib), _marked(as_, ia), False)
        common_b = [k for k in kb if k in ka]
        common_a = [k for k in ka if k in kb]
        if common_b != common_a:
            yield AttrDiff(path, common_b, common_a, "reordered")
        return
    # No identity: compare as multisets of (masked) elements.
    canon_b, canon_a = [_canon(e) for e in b], [_canon(e) for e in a]
    cb, ca = Counter(canon_b), Counter(canon_a)
    if cb == ca:
        yield AttrDiff(path, _mask_items(b, bs), _mask_items(a, as_), "reordered")
        return
    for side, canon, marks, extra, change in ((b, canon_b, bs, cb - ca, "removed"), (a, canon_a, as_, ca - cb, "added")):
        for i, (e, c) in enumerate(zip(side, canon)):
            if extra[c] > 0:
                extra[c] -= 1
                m = mask(e, _marked(marks, i))
                yield AttrDiff(path, m, None, change) if change == "removed" else AttrDiff(path, None, m, change)


def _mask_items(items: list, marks: Any) -> list:
    return [mask(e, _marked(marks, i)) for i, e in enumerate(items)] if _any_true(marks) else items


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _identity(b: list, a: list, bs: Any, as_: Any):
    """A function naming each element of both lists uniquely, or None."""
    if not all(isinstance(e, dict) for e in b + a):
        return None
    first = (b or a)[0] if (b or a) else {}
    for f in IDENTITY_FIELDS:
        if f not in first:
            continue

        def named(e, f=f):
            v = e.get(f)
            return str(v) if isinstance(v, (str, int)) and not isinstance(v, bool) and v != "" else None
        if _usable(b, a, bs, as_, (f,), named):
            return named
    if any(p in e for e in b + a for p in PRINCIPAL_FIELDS):
        def principal(e):
            named = [(p, e[p]) for p in PRINCIPAL_FIELDS if e.get(p)]
            return f"{named[0][0]}={named[0][1]}" if len(named) == 1 and isinstance(named[0][1], str) else None
        if _usable(b, a, bs, as_, PRINCIPAL_FIELDS, principal):
            return principal
    return None


def _usable(b, a, bs, as_, fields: tuple[str, ...], name) -> bool:
    """Every element has a name, names are unique per side, and no naming field is sensitive."""
    for side, marks in ((b, bs), (a, as_)):
        names = []
        for i, e in enumerate(side):
            m = _marked(marks, i)
            if m is True or any(_marked(m, f) is True for f in fields):
                return False
            n = name(e)
            if n is None:
                return False
            names.append(n)
        if len(set(names)) != len(names):
            return False
    return True


# ------------------------------------------------------------------ values Terraform did not mark

# Terraform's marks are not transitive: terraform_data.output copies a sensitive input unmarked,
# and a provider may echo a secret into a computed attribute. So every value marked sensitive
# anywhere in a plan document is also masked wherever else it appears.
MIN_SUBSTRING = 6  # shorter secrets are masked where a whole value equals them, not inside text


def secrets_of(doc: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for key in ("resource_drift", "resource_changes"):
        for rc in doc.get(key) or ():
            c = rc.get("change") or {}
            _collect(c.get("before"), c.get("before_sensitive"), found)
            _collect(c.get("after"), c.get("after_sensitive"), found)
    for c in (doc.get("output_changes") or {}).values():
        _collect(c.get("before"), c.get("before_sensitive"), found)
        _collect(c.get("after"), c.get("after_sensitive"), found)
    for values in ((doc.get("prior_state") or {}).get("values") or {}, doc.get("planned_values") or {}):
        for o in (values.get("outputs") or {}).values():
            _collect(o.get("value"), bool(o.get("sensitive")), found)
        modules, resources = [values.get("root_module") or {}], []
        while modules:
            m = modules.pop()
            modules.extend(m.get("child_modules") or ())
            resources += m.get("resources") or ()
        # One pass of the C encoder says whether anything at all is marked (usually nothing is).
        if "true" in json.dumps([r.get("sensitive_values") for r in resources]):
            for r in resources:
                _collect(r.get("values"), r.get("sensitive_values"), found)
    declared = ((doc.get("configuration") or {}).get("root_module") or {}).get("variables") or {}
    for name, v in (doc.get("variables") or {}).items():
        if (declared.get(name) or {}).get("sensitive"):
            _collect(v.get("value"), True, found)
    return {s for s in found if s}


def _collect(value: Any, marks: Any, found: set[str]) -> None:
    if marks is not True and not _any_true(marks):  # the usual case: nothing marked, nothing to walk
        return
    if marks is True:
        if isinstance(value, (dict, list)):
            for v in value.values() if isinstance(value, dict) else value:
                _collect(v, True, found)
        elif value is not None and not isinstance(value, bool):
            found.add(str(value))
    elif isinstance(value, dict) and isinstance(marks, dict):
        for k, v in value.items():
            _collect(v, marks.get(k, False), found)
    elif isinstance(value, list) and isinstance(marks, list):
        for i, v in enumerate(value):
            _collect(v, marks[i] if i < len(marks) else False, found)


def scrub(value: Any, secrets: set[str]) -> Any:
    """``value`` with every string that is, or contains, a known secret masked."""
    if not secrets:
        return value
    if isinstance(value, str):
        if value in secrets or any(len(s) >= MIN_SUBSTRING and s in value for s in secrets):
            return SENSITIVE
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in secrets:
        return SENSITIVE
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value
