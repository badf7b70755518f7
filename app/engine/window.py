"""Send windows: when, in a contact's local time, an email may go out.

A window is a set of weekdays and a wall-clock range ``[start, end)`` in one timezone.
Each listed day opens once, at ``start`` on that local date, and closes at ``end`` the
same day, or the next day when ``end`` is midnight (00:00) or earlier than ``start``.
All arithmetic is on UTC instants, so DST changes need no special cases beyond turning
a wall-clock time into an instant (see ``_instant``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.engine.model import DAY_NAMES, SendWindow

# Far enough to cover a window listing a single weekday, plus a day either side for
# openings that run past midnight and for a week whose only opening fell in a DST gap.
_SEARCH_DAYS = range(-1, 15)


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The ZoneInfo for ``name``, else for ``fallback``, else UTC.

    Contact data is whatever was imported, so a bad name must never stop a send.
    """
    for candidate in (name, fallback):
        found = _lookup(candidate)
        if found is not None:
            return found
    return ZoneInfo("UTC")


def _lookup(name: str | None) -> ZoneInfo | None:
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: malformed keys such as "../x"; OSError: unreadable tz files.
        return None


def window_zone(window: SendWindow, contact_tz: str | None) -> ZoneInfo:
    """The timezone a window is read in: the contact's for ``"contact"``, else the named one."""
    if window.timezone == "contact":
        return zone(contact_tz, window.fallback_timezone)
    return zone(window.timezone, window.fallback_timezone)


def next_open(window: SendWindow | None, tz: ZoneInfo, at: datetime) -> datetime:
    """``at`` (in UTC) if the window is open then, else the UTC start of its next opening.

    No window means always open. Raises ValueError for a window that never opens.
    """
    if at.tzinfo is None:
        raise ValueError("next_open needs an aware datetime, got a naive one")
    at = at.astimezone(UTC)
    if window is None:
        return at
    local_day = at.astimezone(tz).date()
    for offset in _SEARCH_DAYS:
        opening = _opening(window, tz, local_day + timedelta(days=offset))
        if opening is not None and opening[1] > at:
            return max(opening[0], at)
    raise ValueError(f"the send window {describe_window(window, tz)} never opens")


def _opening(window: SendWindow, tz: ZoneInfo, day: date) -> tuple[datetime, datetime] | None:
    """The UTC ``[start, end)`` of the window's opening on a local date, if it opens then."""
    if day.weekday() not in window.days:
        return None
    same_day = time(0, 0) < window.end and window.start < window.end
    end_day = day if same_day else day + timedelta(days=1)
    start = _instant(day, window.start, tz)
    # fold=1: an end read twice (autumn) closes at its second reading; an opening is
    # one unbroken stretch, so it lasts until the clock reaches ``end`` for the last time.
    end = _instant(end_day, window.end, tz, fold=1)
    # Both ends inside one DST gap leave nothing of that day's opening.
    return (start, end) if start < end else None


def _instant(day: date, wall: time, tz: ZoneInfo, fold: int = 0) -> datetime:
    """The UTC instant at which the local clock reads ``wall`` on ``day``.

    Twice-read times (autumn) give the first reading, or the second with ``fold=1``.
    Skipped times (spring, e.g. 02:30 in Berlin on the last Sunday of March) give the
    moment the clock jumps, the first instant at which it reads that time or later.
    """
    naive = datetime.combine(day, wall)
    instant = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
    if _wall(instant, tz) == naive:
        return instant
    # In a gap fold=0 and fold=1 land on either side of the jump: bisect to the second.
    readings = [int(naive.replace(tzinfo=tz, fold=f).timestamp()) for f in (0, 1)]
    low, high = min(readings), max(readings)
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), tz) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def describe_window(window: SendWindow, tz: ZoneInfo) -> str:
    """The window in the definition's words, e.g. ``mon-fri 09:00-17:00 Asia/Tokyo``."""
    end = "24:00" if window.end == time(0, 0) else window.end.strftime("%H:%M")
    return f"{_describe_days(window.days)} {window.start.strftime('%H:%M')}-{end} {tz.key}"


def _describe_days(days: frozenset[int]) -> str:
    """Runs of three or more days as ranges (``mon-fri``), the rest listed (``sat,sun``)."""
    parts: list[str] = []
    ordered = sorted(day for day in days if 0 <= day < 7)
    run_start = 0
    for index, day in enumerate(ordered):
        last_of_run = index + 1 == len(ordered) or ordered[index + 1] != day + 1
        if not last_of_run:
            continue
        run = ordered[run_start : index + 1]
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in run)
        run_start = index + 1
    return ",".join(parts) or "no days"
