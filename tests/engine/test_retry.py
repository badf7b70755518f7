"""Retry decisions after a failed delivery: back off, give up, or record a bounce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.engine.errors import TransportError
from app.engine.retry import RetryDecision, backoff, decide

FIRST = datetime(2024, 6, 4, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
BUSY = TransportError("mailbox busy, try later", permanent=False, code=451)


def test_it_backs_off_doubling_from_a_minute_up_to_six_hours() -> None:
    delays = [decide(BUSY, n, FIRST, FIRST).retry_at for n in range(1, 12)]

    assert delays == [
        FIRST + minutes * MINUTE for minutes in (1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360)
    ]


def test_it_retries_a_temporary_failure_and_says_why() -> None:
    now = FIRST + 3 * MINUTE

    decision = decide(BUSY, 3, FIRST, now)

    assert decision == RetryDecision(
        "retry", now + 4 * MINUTE, "temporary failure on attempt 3: 451 mailbox busy, try later"
    )


def test_it_retries_a_timeout_without_a_code() -> None:
    timeout = TransportError("timed out connecting to smtp.example.com", permanent=False)

    decision = decide(timeout, 1, FIRST, FIRST)

    assert decision.status == "retry"
    assert decision.reason.endswith(": timed out connecting to smtp.example.com")


def test_it_gives_up_when_the_next_try_falls_after_three_days() -> None:
    now = FIRST + timedelta(days=3) - timedelta(hours=5)

    decision = decide(BUSY, 20, FIRST, now)

    assert decision == RetryDecision(
        "failed", None, "gave up after 3 days of temporary failures: 451 mailbox busy, try later"
    )


def test_it_still_retries_a_try_that_lands_on_the_deadline() -> None:
    now = FIRST + timedelta(days=3) - timedelta(hours=6)

    assert decide(BUSY, 20, FIRST, now).retry_at == FIRST + timedelta(days=3)


def test_it_follows_a_whole_retry_sequence_until_it_gives_up() -> None:
    now, attempts, statuses = FIRST, 1, []
    while True:
        decision = decide(BUSY, attempts, FIRST, now)
        statuses.append(decision.status)
        if decision.retry_at is None:
            break
        now, attempts = decision.retry_at, attempts + 1

    # 1+2+...+256 minutes is 8h31m; then every 6 hours until 3 days have passed.
    assert statuses == ["retry"] * 19 + ["failed"]
    assert now <= FIRST + timedelta(days=3) < now + timedelta(hours=6)


def test_it_honours_custom_limits_in_its_reason() -> None:
    decision = decide(
        BUSY, 2, FIRST, FIRST + timedelta(hours=11, minutes=59), give_up_after=timedelta(hours=12)
    )

    assert decision.status == "failed"
    assert decision.reason.startswith("gave up after 12 hours of temporary failures")


def test_it_does_not_overflow_after_very_many_attempts() -> None:
    assert backoff(100_000, MINUTE, timedelta(hours=6)) == timedelta(hours=6)


@pytest.mark.parametrize("code", [550, 551, 553])
def test_it_records_a_refused_recipient_as_a_hard_bounce(code: int) -> None:
    error = TransportError("no such user", permanent=True, code=code, recipient=True)

    decision = decide(error, 1, FIRST, FIRST)

    assert decision == RetryDecision("bounced", None, f"hard bounce: {code} no such user")


@pytest.mark.parametrize(
    "error",
    [
        TransportError("message rejected as spam", permanent=True, code=550),  # not at RCPT
        TransportError("transaction failed", permanent=True, code=554, recipient=True),
        TransportError("relay access denied", permanent=True, code=552, recipient=True),
        TransportError("authentication rejected", permanent=True),
    ],
)
def test_it_fails_other_permanent_errors_without_a_bounce(error: TransportError) -> None:
    decision = decide(error, 1, FIRST, FIRST)

    assert decision.status == "failed"
    assert decision.retry_at is None
    assert decision.reason.startswith("permanent failure: ")
    assert error.message in decision.reason


def test_it_refuses_zero_attempts() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        decide(BUSY, 0, FIRST, FIRST)
