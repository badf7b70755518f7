"""Scheduling a send: the first instant both the caps and the send window allow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.engine.model import Cap, SendWindow
from app.engine.schedule import SendDecision, earliest_send

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
ONE_A_DAY = Cap(max=1, per=DAY)
THREE_A_WEEK = Cap(max=3, per=timedelta(days=7))
CAPS = [ONE_A_DAY, THREE_A_WEEK]
OFFICE = SendWindow(days=frozenset(range(5)), start=time(9), end=time(17))
UTC_ZONE = ZoneInfo("UTC")
TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def allowed(
    caps: Sequence[Cap],
    sent: Sequence[datetime],
    window: SendWindow | None,
    tz: ZoneInfo,
    t: datetime,
) -> bool:
    """Brute force, for sends all in the past: under every cap and inside the window."""
    for cap in caps:
        if sum(1 for s in sent if t - cap.per < s <= t) >= cap.max:
            return False
    if window is None:
        return True
    local = t.astimezone(tz)
    return local.weekday() in window.days and window.start <= local.time() < window.end


def simulate(
    start: datetime, days: int, gap: timedelta, window: SendWindow | None, tz: ZoneInfo
) -> list[datetime]:
    """Ask for a send ``gap`` after each one made, sending when told; the sends made."""
    sent: list[datetime] = []
    now = start
    step = timedelta(minutes=15)  # every release and opening falls on a quarter hour
    while True:
        decision = earliest_send(now, CAPS, sent, window, tz)
        if decision.at >= start + days * DAY:
            return sent
        assert decision.at >= now
        assert (decision.reason is None) == (decision.at == now)
        # As early as allowed: no quarter hour between asking and sending would do.
        assert allowed(CAPS, sent, window, tz, decision.at)
        waited = [now + i * step for i in range((decision.at - now) // step)]
        assert not any(allowed(CAPS, sent, window, tz, t) for t in waited)
        sent.append(decision.at)
        now = decision.at + gap


def assert_rolling_windows_hold(sent: list[datetime]) -> None:
    for end in sent:
        assert sum(1 for s in sent if end - DAY < s <= end) <= 1, end
        assert sum(1 for s in sent if end - 7 * DAY < s <= end) <= 3, end


def test_it_sends_now_when_nothing_stands_in_the_way() -> None:
    now = utc(2024, 6, 4, 10, 0)

    assert earliest_send(now, CAPS, [now - 2 * DAY], OFFICE, UTC_ZONE) == SendDecision(now, None)


def test_it_defers_a_capped_email_and_says_which_cap() -> None:
    now = utc(2024, 6, 4, 10, 0)

    decision = earliest_send(now, CAPS, [now - 2 * HOUR], None, UTC_ZONE)

    assert decision == SendDecision(now + 22 * HOUR, "cap 1/1d reached")


def test_it_defers_to_the_window_and_says_which_window() -> None:
    now = utc(2024, 6, 3, 9, 0)  # Monday 18:00 in Tokyo

    decision = earliest_send(now, CAPS, [], OFFICE, TOKYO)

    assert decision == SendDecision(
        utc(2024, 6, 4, 0, 0), "outside the send window mon-fri 09:00-17:00 Asia/Tokyo"
    )


def test_it_moves_a_cap_release_at_night_to_the_next_morning() -> None:
    # Another funnel without a window sent on Tuesday 20:00 Berlin time (18:00 UTC).
    other_funnel = utc(2024, 6, 4, 18, 0)
    now = utc(2024, 6, 5, 8, 0)  # Wednesday 10:00 in Berlin, inside the window

    decision = earliest_send(now, CAPS, [other_funnel], OFFICE, BERLIN)

    # The cap frees on Wednesday at 20:00, after 17:00: Thursday 09:00 CEST.
    assert decision.at == utc(2024, 6, 6, 7, 0)
    assert decision.reason == (
        "cap 1/1d reached; then outside the send window mon-fri 09:00-17:00 Europe/Berlin"
    )


def test_it_moves_a_cap_release_on_friday_evening_to_monday() -> None:
    sent = [utc(2024, 6, 6, 18, 0)]  # Thursday 20:00 CEST

    decision = earliest_send(utc(2024, 6, 7, 10, 0), CAPS, sent, OFFICE, BERLIN)

    assert decision.at == utc(2024, 6, 10, 7, 0)


def test_it_checks_the_caps_again_where_the_window_opens() -> None:
    # Another worker has claimed a send for Wednesday 09:00 UTC, when the window opens.
    claimed = utc(2024, 6, 5, 9, 0)
    now = utc(2024, 6, 4, 18, 0)  # Tuesday evening, the window is closed

    decision = earliest_send(now, CAPS, [claimed], OFFICE, UTC_ZONE)

    # Wednesday 09:00 is taken: 1/1d allows the next one on Thursday 09:00.
    assert decision.at == utc(2024, 6, 6, 9, 0)
    assert decision.reason == (
        "outside the send window mon-fri 09:00-17:00 UTC; then cap 1/1d reached"
    )


def test_it_reads_the_window_in_its_own_zone_when_given_none() -> None:
    window = SendWindow(
        days=frozenset(range(5)), start=time(9), end=time(17), timezone="Asia/Tokyo"
    )

    decision = earliest_send(utc(2024, 6, 3, 9, 0), CAPS, [], window, None)

    assert decision.at == utc(2024, 6, 4, 0, 0)


def test_it_refuses_a_cap_that_never_allows() -> None:
    with pytest.raises(ValueError, match="never allows"):
        earliest_send(utc(2024, 6, 4), [Cap(max=0, per=DAY)], [], None, UTC_ZONE)


def test_it_spreads_a_month_of_back_to_back_sends_over_both_caps() -> None:
    start = utc(2024, 6, 3, 10, 0)

    sent = simulate(start, days=31, gap=timedelta(0), window=None, tz=UTC_ZONE)

    assert_rolling_windows_hold(sent)
    # Three on consecutive days, then wait for the week to roll: days 0, 1, 2, 7, 8, 9...
    expected_days = [week * 7 + day for week in range(5) for day in range(3) if week * 7 + day < 31]
    assert sent == [start + d * DAY for d in expected_days]


def test_it_spreads_a_month_of_sends_over_caps_and_a_tokyo_window() -> None:
    # Asking again five hours after each send lands some requests at night in Tokyo.
    start = utc(2024, 6, 2, 20, 0)  # Monday 05:00 in Tokyo

    sent = simulate(start, days=31, gap=5 * HOUR, window=OFFICE, tz=TOKYO)

    assert_rolling_windows_hold(sent)
    assert len(sent) >= 12
    for moment in sent:
        local = moment.astimezone(TOKYO)
        assert local.weekday() < 5 and time(9) <= local.time() < time(17)
    assert sent[:4] == [
        utc(2024, 6, 3, 0, 0),  # Mon 09:00 JST, the window opens
        utc(2024, 6, 4, 0, 0),  # Tue 09:00: a day later
        utc(2024, 6, 5, 0, 0),  # Wed 09:00: the third of the week
        utc(2024, 6, 10, 0, 0),  # Mon 09:00: the Monday send leaves the week
    ]


def test_it_spreads_a_month_across_berlins_dst_change() -> None:
    start = utc(2024, 3, 18, 7, 0)  # Monday 08:00 CET

    sent = simulate(start, days=31, gap=HOUR, window=OFFICE, tz=BERLIN)

    assert_rolling_windows_hold(sent)
    local = [moment.astimezone(BERLIN) for moment in sent]
    assert [t.strftime("%a %d %H:%M") for t in local[5:8]] == [
        "Wed 27 09:00",  # CET
        # Clocks went forward on Sunday 31 March. Caps count real hours, so the week
        # since Monday 09:00 CET ends at 10:00 CEST, not 09:00.
        "Mon 01 10:00",
        "Tue 02 10:00",
    ]
