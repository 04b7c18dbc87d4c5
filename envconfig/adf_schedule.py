"""A job's Quartz schedule as a Data Factory schedule-trigger recurrence.

When Data Factory orchestrates a job, the job's schedule in the environment file
(``jobs.schedules.<job>``: Quartz cron + IANA time zone) becomes the factory's trigger and the
Databricks job gets none: one schedule, written once, run by one scheduler.

Data Factory's recurrence knows fixed minutes and hours on every day, on listed weekdays or on
listed days of the month, and Windows time zone ids ("W. Europe Standard Time"), not IANA ones.
Only the Quartz forms with such an equivalent are accepted; anything else is a clear error.
Pure Python: the config loader calls it to validate, the stacks to synthesize.
"""

from __future__ import annotations

from dataclasses import dataclass

# IANA -> Windows time zone id (what Data Factory's recurrence.timeZone takes). The Unicode CLDR
# windowsZones mapping, cut to the zones an environment here is likely to use; another zone is an
# error that says to add it (a wrong guess would shift every run by hours).
WINDOWS_TIME_ZONES = {
    "UTC": "UTC", "Etc/UTC": "UTC",
    "Europe/Amsterdam": "W. Europe Standard Time", "Europe/Berlin": "W. Europe Standard Time",
    "Europe/Rome": "W. Europe Standard Time", "Europe/Stockholm": "W. Europe Standard Time",
    "Europe/Vienna": "W. Europe Standard Time", "Europe/Zurich": "W. Europe Standard Time",
    "Europe/Oslo": "W. Europe Standard Time",
    "Europe/Paris": "Romance Standard Time", "Europe/Brussels": "Romance Standard Time",
    "Europe/Madrid": "Romance Standard Time", "Europe/Copenhagen": "Romance Standard Time",
    "Europe/Warsaw": "Central European Standard Time", "Europe/Prague": "Central Europe Standard Time",
    "Europe/Helsinki": "FLE Standard Time", "Europe/London": "GMT Standard Time", "Europe/Dublin": "GMT Standard Time",
    "America/New_York": "Eastern Standard Time", "America/Chicago": "Central Standard Time",
    "America/Denver": "Mountain Standard Time", "America/Los_Angeles": "Pacific Standard Time",
    "America/Toronto": "Eastern Standard Time", "Asia/Tokyo": "Tokyo Standard Time",
    "Asia/Singapore": "Singapore Standard Time", "Australia/Sydney": "AUS Eastern Standard Time",
}

_DAYS = {"SUN": "Sunday", "MON": "Monday", "TUE": "Tuesday", "WED": "Wednesday", "THU": "Thursday",
         "FRI": "Friday", "SAT": "Saturday"}
_DAY_NUMBERS = {"1": "SUN", "2": "MON", "3": "TUE", "4": "WED", "5": "THU", "6": "FRI", "7": "SAT"}


class ScheduleError(ValueError):
    """The schedule has no Data Factory equivalent; the message says why and what would do."""


@dataclass(frozen=True)
class Recurrence:
    """The parts of a schedule trigger's recurrence (azurerm_data_factory_trigger_schedule)."""

    frequency: str  # Day | Week | Month
    hours: tuple[int, ...]
    minutes: tuple[int, ...]
    time_zone: str  # Windows id
    days_of_week: tuple[str, ...] = ()
    days_of_month: tuple[int, ...] = ()
    interval: int = 1


def _numbers(field: str, what: str, low: int, high: int) -> tuple[int, ...]:
    out = []
    for part in field.split(","):
        if not part.isdigit() or not low <= int(part) <= high:
            raise ScheduleError(f"{what} {field!r}: Data Factory needs fixed values ({low}-{high}, comma-separated), "
                                "not ranges, steps or wildcards")
        out.append(int(part))
    return tuple(sorted(set(out)))


def _weekdays(field: str) -> tuple[str, ...]:
    out = []
    for part in field.upper().split(","):
        part = _DAY_NUMBERS.get(part, part)
        if part not in _DAYS:
            raise ScheduleError(f"day of week {field!r}: Data Factory needs listed days (SUN,MON,...), "
                                "not ranges or nth-weekday forms")
        out.append(_DAYS[part])
    order = list(_DAYS.values())
    return tuple(sorted(set(out), key=order.index))


def windows_time_zone(iana: str) -> str:
    try:
        return WINDOWS_TIME_ZONES[iana]
    except KeyError:
        raise ScheduleError(f"time zone {iana!r} has no Windows id in envconfig/adf_schedule.py WINDOWS_TIME_ZONES "
                            "(Data Factory triggers take Windows ids): add its CLDR windowsZones mapping there") from None


def recurrence(quartz_cron: str, timezone: str) -> Recurrence:
    """``0 0 1 ? * SUN`` in Europe/Amsterdam -> weekly on Sunday at 01:00, W. Europe Standard Time."""
    parts = quartz_cron.split()
    if len(parts) not in (6, 7):
        raise ScheduleError(f"{quartz_cron!r} is not a Quartz cron expression (6 or 7 fields)")
    seconds, minutes, hours, dom, month, dow = parts[:6]
    if seconds != "0":
        raise ScheduleError(f"{quartz_cron!r}: Data Factory schedules to the minute; the seconds field must be 0")
    if month != "*" or (len(parts) == 7 and parts[6] != "*"):
        raise ScheduleError(f"{quartz_cron!r}: Data Factory has no month or year restriction; use * for both")
    mins = _numbers(minutes, "minutes", 0, 59)
    hrs = _numbers(hours, "hours", 0, 23)
    tz = windows_time_zone(timezone)
    if dom in ("?", "*") and dow in ("?", "*"):
        return Recurrence("Day", hrs, mins, tz)
    if dom == "?" and dow not in ("?", "*"):
        return Recurrence("Week", hrs, mins, tz, days_of_week=_weekdays(dow))
    if dow == "?" and dom not in ("?", "*"):
        return Recurrence("Month", hrs, mins, tz, days_of_month=_numbers(dom, "day of month", 1, 31))
    raise ScheduleError(f"{quartz_cron!r}: give either a day of month or a day of week (the other '?')")
