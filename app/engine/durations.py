"""Time as marketers write it: durations (``2d``), days (``mon-fri``), times (``09:00``)."""

from __future__ import annotations

import re
from datetime import time, timedelta

from app.engine.model import DAY_NAMES

UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}

_DURATION = re.compile(r"(\d+)([mhdw])")
_EXAMPLE = "write a whole number and a unit, m, h, d or w, like 2d"


def parse_duration(text: str) -> timedelta:
    """Return the timedelta that ``text`` (``"0m"``, ``"2d"``, ``"1w"``) stands for.

    Raises ValueError with a message a marketer can act on.
    """
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"'{text}' is not a duration: {_EXAMPLE}")
    count, unit = match.groups()
    try:
        return int(count) * UNITS[unit]
    except OverflowError:
        # timedelta tops out near 2.7 million years; nobody means that on purpose.
        raise ValueError(f"'{text}' is far too long to be a duration") from None


def format_duration(td: timedelta) -> str:
    """Return the shortest exact way to write ``td``: ``"2d"``, ``"90m"``, ``"1w"``.

    Zero is ``"0m"``. Raises ValueError for negative spans or ones that are not a
    whole number of minutes, since the syntax cannot express them.
    """
    if td < timedelta(0):
        raise ValueError(f"{td} is negative: durations count forwards")
    if not td:
        return "0m"
    for unit, size in UNITS.items():  # largest unit first, so the shortest form wins
        count, rest = divmod(td, size)
        if not rest:
            return f"{count}{unit}"
    raise ValueError(f"{td} is not a whole number of minutes")


# --- Days of the week and times of day, as a send window writes them ------------------

_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_SETS = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
MIDNIGHT = time(0, 0)


def parse_day(text: str) -> int:
    """Return 0 (Monday) to 6 for ``"mon"`` or ``"monday"`` in any case."""
    name = text.strip().lower() if isinstance(text, str) else ""
    for index, (short, full) in enumerate(zip(DAY_NAMES, _FULL_DAY_NAMES, strict=True)):
        if name in (short, full):
            return index
    raise ValueError(f"'{text}' is not a day: write mon, tue, wed, thu, fri, sat or sun")


def parse_days(text: str) -> frozenset[int]:
    """Return the weekdays (0 = Monday) of ``"daily"``, ``"mon-fri"`` or ``"mon,wed,fri"``.

    Ranges may wrap around the weekend (``"fri-mon"``) and mix with names
    (``"mon-wed,fri"``).
    """
    name = text.strip().lower() if isinstance(text, str) else ""
    if name in _DAY_SETS:
        return _DAY_SETS[name]
    try:
        return frozenset(day for part in name.split(",") for day in _day_range(part))
    except ValueError:
        raise ValueError(
            f"'{text}' is not a set of days: write daily, a range like mon-fri, "
            "or days like mon,wed,fri"
        ) from None


def _day_range(part: str) -> list[int]:
    first, dash, last = part.partition("-")
    start = parse_day(first)
    end = parse_day(last) if dash else start
    return [(start + offset) % 7 for offset in range((end - start) % 7 + 1)]


def format_days(days: frozenset[int]) -> str:
    """Return the usual short way to write ``days``: ``daily``, ``mon-fri``, ``mon,wed``."""
    if not days or not days <= _DAY_SETS["daily"]:
        raise ValueError(f"{sorted(days)} is not a set of weekdays 0-6")
    if days == _DAY_SETS["daily"]:
        return "daily"
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = [
        DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs
    ]
    return ",".join(parts)


def parse_time(text: str, *, end: bool = False) -> time:
    """Return the time of ``"HH:MM"`` (24-hour). With ``end``, ``"24:00"`` means midnight.

    Midnight as an end is ``time(0, 0)``, as ``SendWindow`` expects.
    """
    match = _TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    hour, minute = (int(match[1]), int(match[2])) if match else (-1, -1)
    if end and (hour, minute) == (24, 0):
        return MIDNIGHT
    if not (0 <= hour < 24 and 0 <= minute < 60):
        latest = "24:00" if end else "23:59"
        raise ValueError(
            f"'{text}' is not a time: write HH:MM on the 24-hour clock, from 00:00 to {latest}"
        )
    return time(hour, minute)


def format_time(value: time, *, end: bool = False) -> str:
    """Return ``"HH:MM"``; with ``end``, midnight is ``"24:00"``."""
    if value.second or value.microsecond:
        raise ValueError(f"{value} is not a whole minute")
    if end and value == MIDNIGHT:
        return "24:00"
    return f"{value.hour:02d}:{value.minute:02d}"
