"""Frequency caps: parsing ``"1/1d,3/7d"`` and deciding when one more email may go.

A cap N per W allows a send at ``t`` when no rolling window of length W that would
contain ``t`` already holds N sends. Windows are half-open, ``(u - W, u]``, so a send
made exactly W ago no longer counts.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.engine.durations import parse_duration
from app.engine.model import Cap

_CAP_RE = re.compile(r"^(?P<max>-?[0-9]+)\s*/\s*(?P<per>\S+)$")


@dataclass(frozen=True)
class CapDecision:
    """Whether one more email may go now.

    ``not_before`` is ``now`` when allowed, the earliest moment every cap allows one
    more email when not, and None when a cap can never allow one (``max`` below 1).
    ``cap`` is the cap that binds (the one whose release sets ``not_before``).
    """

    allowed: bool
    not_before: datetime | None
    cap: Cap | None


def parse_caps(text: str) -> tuple[Cap, ...]:
    """Parse ``"1/1d,3/7d"`` into caps; blank text means no caps.

    Raises ValueError naming the part that is wrong.
    """
    if not text.strip():
        return ()
    return tuple(_parse_cap(part.strip()) for part in text.split(","))


def _parse_cap(part: str) -> Cap:
    if not part:
        raise ValueError("empty cap between commas: write caps like 1/1d,3/7d")
    match = _CAP_RE.match(part)
    if match is None:
        raise ValueError(f'cap "{part}" is not written as <count>/<duration>, for example 1/1d')
    count = int(match["max"])
    if count < 1:
        raise ValueError(f'cap "{part}" must allow at least 1 email')
    return Cap(max=count, per=_parse_per(part, match["per"]))


def _parse_per(part: str, text: str) -> timedelta:
    try:
        per = parse_duration(text)
    except ValueError as error:
        raise ValueError(f'cap "{part}": {error}') from None
    if per <= timedelta(0):
        raise ValueError(f'cap "{part}": the period must be longer than zero')
    return per


def check_caps(caps: Sequence[Cap], sent_at: Sequence[datetime], now: datetime) -> CapDecision:
    """Decide whether every cap allows one more email at ``now``; see CapDecision.

    Sends recorded after ``now`` (claimed by another worker, still "sending") count
    too: sending now must not push any window that includes them over its cap.
    """
    sent = sorted(sent_at)
    t = now
    binding: Cap | None = None
    # Moving past one cap's release can land inside another cap's full window (only
    # possible with future sends), so repeat until one pass finds every cap allowing.
    # t only grows and every release is some s + W, so this ends.
    while True:
        moved = False
        for cap in caps:
            release = _earliest_allowed(cap, sent, t)
            if release is None:
                return CapDecision(allowed=False, not_before=None, cap=cap)
            if release > t:
                t, binding, moved = release, cap, True
        if not moved:
            break
    if binding is None:
        return CapDecision(allowed=True, not_before=now, cap=None)
    return CapDecision(allowed=False, not_before=t, cap=binding)


def _earliest_allowed(cap: Cap, sent: list[datetime], t: datetime) -> datetime | None:
    """The first moment at or after ``t`` this cap allows a send (``sent`` is sorted)."""
    if cap.max < 1:
        return None
    if _allows(cap, sent, t):
        return t
    # Allowed stretches begin where a send leaves its window, at s + W: try those in order.
    for release in sorted({s + cap.per for s in sent if s + cap.per > t}):
        if _allows(cap, sent, release):
            return release
    raise AssertionError("unreachable: after the last release every window is empty")


def _allows(cap: Cap, sent: list[datetime], t: datetime) -> bool:
    """True if a send at ``t`` keeps every window ``(u - W, u]`` containing t under cap.

    Only windows ending at ``t`` or at a later send within W of it can be the fullest.
    """
    ends = [t] + [s for s in sent[bisect_right(sent, t) :] if s < t + cap.per]
    return all(_count(sent, end - cap.per, end) < cap.max for end in ends)


def _count(sent: list[datetime], after: datetime, upto: datetime) -> int:
    """How many sends fall in ``(after, upto]``."""
    return bisect_right(sent, upto) - bisect_right(sent, after)
