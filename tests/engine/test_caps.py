"""Frequency caps: parsing cap strings and deciding when one more email may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.engine.caps import CapDecision, check_caps, parse_caps
from app.engine.model import Cap

NOW = datetime(2024, 6, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
ONE_A_DAY = Cap(max=1, per=DAY)
THREE_A_WEEK = Cap(max=3, per=timedelta(days=7))


def test_it_parses_global_caps() -> None:
    assert parse_caps("1/1d,3/7d") == (ONE_A_DAY, THREE_A_WEEK)


def test_it_parses_every_unit_and_tolerates_spaces() -> None:
    assert parse_caps(" 2/30m , 4/12h,10/2w ") == (
        Cap(2, timedelta(minutes=30)),
        Cap(4, timedelta(hours=12)),
        Cap(10, timedelta(weeks=2)),
    )


@pytest.mark.parametrize("text", ["", "   "])
def test_it_reads_blank_text_as_no_caps(text: str) -> None:
    assert parse_caps(text) == ()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("1-1d", '"1-1d"'),
        ("one/1d", '"one/1d"'),
        ("1/1d,3/7x", '"3/7x"'),
        ("1/1d,,3/7d", "empty cap"),
        ("1/1d,", "empty cap"),
        ("0/1d", '"0/1d"'),
        ("-1/1d", '"-1/1d"'),
        ("1/0d", '"1/0d"'),
        ("1/", '"1/"'),
    ],
)
def test_it_rejects_a_bad_cap_naming_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        parse_caps(text)


def test_it_allows_with_no_caps_or_no_history() -> None:
    assert check_caps([], [NOW - HOUR], NOW) == CapDecision(True, NOW, None)
    assert check_caps([ONE_A_DAY, THREE_A_WEEK], [], NOW) == CapDecision(True, NOW, None)


def test_it_defers_a_reached_cap_until_the_send_leaves_the_window() -> None:
    decision = check_caps([ONE_A_DAY], [NOW - 3 * HOUR], NOW)

    assert decision == CapDecision(False, NOW + 21 * HOUR, ONE_A_DAY)


def test_it_stops_counting_a_send_exactly_one_window_ago() -> None:
    assert check_caps([ONE_A_DAY], [NOW - DAY], NOW).allowed
    assert not check_caps([ONE_A_DAY], [NOW - DAY + timedelta(seconds=1)], NOW).allowed


def test_it_waits_for_the_oldest_send_of_a_full_window_in_any_order() -> None:
    sent = [NOW - 2 * DAY, NOW - 5 * DAY, NOW - 3 * DAY, NOW - 8 * DAY]

    decision = check_caps([THREE_A_WEEK], sent, NOW)

    assert decision == CapDecision(False, NOW + 2 * DAY, THREE_A_WEEK)


def test_it_lets_the_strictest_cap_win() -> None:
    sent = [NOW - 5 * DAY, NOW - 3 * DAY, NOW - 2 * HOUR]

    decision = check_caps([ONE_A_DAY, THREE_A_WEEK], sent, NOW)

    # 1/1d would allow in 22 hours; 3/7d only once the send 5 days ago leaves its week.
    assert decision == CapDecision(False, NOW + 2 * DAY, THREE_A_WEEK)


def test_it_allows_below_the_cap() -> None:
    assert check_caps([THREE_A_WEEK], [NOW - DAY, NOW - 2 * DAY], NOW).allowed


def test_it_counts_a_send_claimed_for_later_as_used() -> None:
    decision = check_caps([ONE_A_DAY], [NOW + 2 * HOUR], NOW)

    # Sending now would put two emails within a day of the one going out at +2h.
    assert decision == CapDecision(False, NOW + 26 * HOUR, ONE_A_DAY)


def test_it_ignores_a_later_send_a_whole_window_away() -> None:
    assert check_caps([ONE_A_DAY], [NOW + DAY], NOW).allowed
    assert check_caps([Cap(2, DAY)], [NOW + 2 * HOUR], NOW).allowed


def fits(caps: list[Cap], sent: list[datetime], t: datetime) -> bool:
    """Brute force: with a send at t, no rolling window holding t has too many."""
    everything = [*sent, t]
    return all(
        sum(1 for s in everything if end - cap.per < s <= end) <= cap.max
        for cap in caps
        for end in everything
        if end - cap.per < t <= end
    )


def test_it_keeps_iterating_until_every_cap_allows() -> None:
    twice_in_two_days = Cap(max=2, per=2 * DAY)
    caps = [ONE_A_DAY, twice_in_two_days]
    claimed = NOW + 2 * DAY + 6 * HOUR
    sent = [NOW - HOUR, NOW - 12 * HOUR, claimed]

    decision = check_caps(caps, sent, NOW)

    # 1/1d frees at +23h, where 2/2d is full until +1d12h; there the email claimed
    # for +2d6h makes 1/1d bind again, until a day after it.
    assert decision == CapDecision(False, claimed + DAY, ONE_A_DAY)
    step = timedelta(minutes=30)
    earlier = [NOW + i * step for i in range((claimed + DAY - NOW) // step)]
    assert not any(fits(caps, sent, t) for t in earlier)
    assert fits(caps, sent, claimed + DAY)


def test_it_never_allows_a_cap_of_zero() -> None:
    never = Cap(max=0, per=DAY)

    assert check_caps([ONE_A_DAY, never], [], NOW) == CapDecision(False, None, never)
