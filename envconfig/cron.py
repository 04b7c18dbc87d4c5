"""Quartz cron validation (the syntax Databricks job schedules use).

Quartz differs from Unix cron: a seconds field first, an optional year last, day-of-week
1-7 starting on Sunday, and exactly one of day-of-month / day-of-week must be '?'.
"""

from __future__ import annotations

import re

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# name, low, high, names (1-based), extra tokens allowed
FIELDS = [
    ("seconds", 0, 59, None),
    ("minutes", 0, 59, None),
    ("hours", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 1, 7, DAYS),
    ("year", 1970, 2199, None),
]


class CronError(ValueError):
    pass


def _value(tok: str, name: str, lo: int, hi: int, names: list[str] | None) -> int:
    if names and tok.upper() in names:
        return names.index(tok.upper()) + 1
    if not re.fullmatch(r"[0-9]+", tok):  # ASCII digits only: str.isdigit() accepts superscripts
        raise CronError(f"{name} field: {tok!r} is not a number{' or a name' if names else ''}")
    v = int(tok)
    if not lo <= v <= hi:
        raise CronError(f"{name} field: {v} is outside {lo}-{hi}")
    return v


def _check_field(text: str, idx: int) -> None:
    name, lo, hi, names = FIELDS[idx]
    if text == "?":
        if name not in ("day-of-month", "day-of-week"):
            raise CronError(f"{name} field: '?' is only allowed in day-of-month or day-of-week")
        return
    for item in text.split(","):
        if item == "":
            raise CronError(f"{name} field: empty list item in {text!r}")
        if name == "day-of-month" and item in ("L", "LW"):
            continue
        if name == "day-of-month" and item.startswith("L-"):  # n days before the last day of the month
            if not (re.fullmatch(r"L-[0-9]+", item) and 1 <= int(item[2:]) <= 30):
                raise CronError(f"{name} field: {item!r} must be L-1 to L-30")
            continue
        if name == "day-of-month" and item.endswith("W") and item[:-1].isdigit():
            _value(item[:-1], name, lo, hi, names)
            continue
        if name == "day-of-week" and (item == "L" or re.fullmatch(r"\w+L", item)):
            if item != "L":
                _value(item[:-1], name, lo, hi, names)
            continue
        if name == "day-of-week" and "#" in item:
            day, _, nth = item.partition("#")
            _value(day, name, lo, hi, names)
            if not (nth.isdigit() and 1 <= int(nth) <= 5):
                raise CronError(f"{name} field: '#{nth}' must be 1-5")
            continue
        base, _, step = item.partition("/")
        if base.endswith("-") or base.startswith("-"):
            raise CronError(f"{name} field: range {base!r} is missing an end")
        if step and not (step.isdigit() and int(step) > 0):
            raise CronError(f"{name} field: step {step!r} must be a positive number")
        if base == "*":
            continue
        start, _, end = base.partition("-")
        a = _value(start, name, lo, hi, names)
        if end:
            b = _value(end, name, lo, hi, names)
            if b < a and name not in ("day-of-week", "month"):
                raise CronError(f"{name} field: range {base!r} runs backwards")


def validate_quartz_cron(expr: str) -> None:
    parts = expr.split()
    if len(parts) not in (6, 7):
        raise CronError(
            f"Quartz cron needs 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), "
            f"got {len(parts)} in {expr!r}; e.g. '0 0 1 ? * SUN' for Sundays at 01:00"
        )
    for i, p in enumerate(parts):
        _check_field(p, i)
    dom, dow = parts[3], parts[5]
    if (dom == "?") == (dow == "?"):
        raise CronError(f"exactly one of day-of-month ({dom!r}) and day-of-week ({dow!r}) must be '?'")
