"""What to do after a failed delivery: retry later, give up, or record a hard bounce.

Mirrors procrastinate's ``RetryStrategy.get_retry_decision``: a pure function of the
error, the attempt count and the clock, so the worker only records what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.engine.errors import TransportError

# Replies that mean "this mailbox does not exist or may not receive" when given to
# RCPT TO: the address is suppressed. Other 5xx (policy, content) fail only this email.
HARD_BOUNCE_CODES = frozenset({550, 551, 553})


@dataclass(frozen=True)
class RetryDecision:
    """``status`` is ``"retry"`` (at ``retry_at``), ``"failed"`` or ``"bounced"``."""

    status: str
    retry_at: datetime | None
    reason: str


def decide(
    error: TransportError,
    attempts: int,
    first_attempt_at: datetime,
    now: datetime,
    *,
    give_up_after: timedelta = timedelta(days=3),
    base: timedelta = timedelta(minutes=1),
    max_delay: timedelta = timedelta(hours=6),
) -> RetryDecision:
    """Decide the fate of a message whose latest attempt (number ``attempts``) failed.

    Temporary failures back off exponentially (``base``, doubling, at most
    ``max_delay``) until the next try would fall after ``first_attempt_at +
    give_up_after``; then the message has failed.
    """
    if attempts < 1:
        raise ValueError(f"attempts includes the failing one, so it is at least 1, not {attempts}")
    what = _describe_error(error)
    if error.permanent:
        if error.recipient and error.code in HARD_BOUNCE_CODES:
            return RetryDecision("bounced", None, f"hard bounce: {what}")
        return RetryDecision("failed", None, f"permanent failure: {what}")
    retry_at = now + backoff(attempts, base, max_delay)
    if retry_at > first_attempt_at + give_up_after:
        reason = f"gave up after {plain_duration(give_up_after)} of temporary failures: {what}"
        return RetryDecision("failed", None, reason)
    return RetryDecision("retry", retry_at, f"temporary failure on attempt {attempts}: {what}")


def backoff(attempts: int, base: timedelta, max_delay: timedelta) -> timedelta:
    """``base * 2**(attempts - 1)``, at most ``max_delay``."""
    delay = base
    # Double step by step rather than computing 2**n: a message retried thousands of
    # times must not overflow timedelta.
    for _ in range(attempts - 1):
        if delay >= max_delay:
            break
        delay *= 2
    return min(delay, max_delay)


def _describe_error(error: TransportError) -> str:
    message = error.message or "no message from the server"
    return f"{error.code} {message}" if error.code is not None else message


def plain_duration(span: timedelta) -> str:
    """A span in words: ``3 days``, ``1 day 6 hours``, ``45 minutes``."""
    minutes = int(span.total_seconds()) // 60
    parts = []
    for size, unit in ((24 * 60, "day"), (60, "hour"), (1, "minute")):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts) or "no time"
