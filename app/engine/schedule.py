"""When an email may go: the first instant both the caps and the send window allow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from app.engine.caps import check_caps
from app.engine.model import Cap, SendWindow
from app.engine.window import describe_window, next_open, window_zone, zone


@dataclass(frozen=True)
class SendDecision:
    """``at == now`` means send now; otherwise ``reason`` says why it waits until ``at``."""

    at: datetime
    reason: str | None


def earliest_send(
    now: datetime,
    caps: Sequence[Cap],
    sent_at: Sequence[datetime],
    window: SendWindow | None,
    tz: ZoneInfo | None = None,
) -> SendDecision:
    """The earliest instant at or after ``now`` that the window and every cap allow.

    ``sent_at`` are the contact's sends (past, or claimed for later) that the caps count.
    ``tz`` is the zone the window is read in (``window_zone``); without one, the
    window's own zone or fallback. Raises ValueError when that instant does not exist
    (a cap allowing no email, a window with no days).
    """
    if tz is None:
        tz = window_zone(window, None) if window is not None else zone("UTC")
    reasons: list[str] = []
    at = now
    # Each pass that does not finish moves ``at`` to a cap release (some s + W, finitely
    # many) and then to a window opening, so the loop ends within that many passes.
    for _ in range(len(caps) * len(sent_at) + 2):
        opened = next_open(window, tz, at)
        if window is not None and opened != at:
            _note(reasons, f"outside the send window {describe_window(window, tz)}")
        caps_say = check_caps(caps, sent_at, opened)
        if caps_say.allowed:
            return SendDecision(at=opened, reason="; then ".join(reasons) or None)
        if caps_say.not_before is None:
            raise ValueError(f"cap {caps_say.cap} never allows an email")
        _note(reasons, f"cap {caps_say.cap} reached")
        at = caps_say.not_before
    raise AssertionError("unreachable: caps and window did not settle")


def _note(reasons: list[str], reason: str) -> None:
    # The same cause can come up on several passes; say it once, in first-seen order.
    if reason not in reasons:
        reasons.append(reason)
