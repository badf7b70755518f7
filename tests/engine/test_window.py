"""Send windows: reading a contact's timezone and finding the next opening."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.engine.model import SendWindow
from app.engine.window import describe_window, next_open, window_zone, zone

WEEKDAYS = frozenset(range(5))
OFFICE = SendWindow(days=WEEKDAYS, start=time(9), end=time(17))
TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def wall_inside(window: SendWindow, tz: ZoneInfo, instant: datetime) -> bool:
    """Brute force: does the local clock at ``instant`` read a time inside the window?"""
    local = instant.astimezone(tz)
    end = window.end if window.end != time(0, 0) else time.max
    return local.weekday() in window.days and window.start <= local.time() < end


@pytest.mark.parametrize(
    ("name", "fallback", "expected"),
    [
        ("Asia/Tokyo", "UTC", "Asia/Tokyo"),
        ("Mars/Olympus", "Europe/Berlin", "Europe/Berlin"),
        ("", "Europe/Berlin", "Europe/Berlin"),
        (None, "America/New_York", "America/New_York"),
        ("../../etc/passwd", "Asia/Tokyo", "Asia/Tokyo"),
        ("Mars/Olympus", "Venus/Nowhere", "UTC"),
        (" Asia/Tokyo ", "UTC", "Asia/Tokyo"),
    ],
)
def test_it_falls_back_on_a_bad_zone_name(name: str | None, fallback: str, expected: str) -> None:
    assert zone(name, fallback).key == expected


def test_it_reads_the_window_in_the_contacts_zone_or_the_fallback() -> None:
    window = SendWindow(timezone="contact", fallback_timezone="Europe/Berlin")

    assert window_zone(window, "Asia/Tokyo") == TOKYO
    assert window_zone(window, None) == BERLIN
    assert window_zone(window, "not a zone") == BERLIN


def test_it_reads_a_named_window_zone_whatever_the_contact_says() -> None:
    window = SendWindow(timezone="America/New_York", fallback_timezone="Europe/Berlin")

    assert window_zone(window, "Asia/Tokyo") == NEW_YORK


def test_it_is_always_open_without_a_window() -> None:
    at = datetime(2024, 6, 8, 3, 0, tzinfo=TOKYO)

    opened = next_open(None, TOKYO, at)

    assert opened == at
    assert opened.tzinfo == UTC


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Tokyo is UTC+9 all year: 09:00-17:00 JST is 00:00-08:00 UTC the same day.
        (utc(2024, 6, 3, 0, 0), utc(2024, 6, 3, 0, 0)),  # Mon 09:00 JST: opening
        (utc(2024, 6, 3, 7, 59), utc(2024, 6, 3, 7, 59)),  # Mon 16:59 JST: still open
        (utc(2024, 6, 3, 8, 0), utc(2024, 6, 4, 0, 0)),  # Mon 17:00 JST: closed
        (utc(2024, 6, 2, 23, 59), utc(2024, 6, 3, 0, 0)),  # Mon 08:59 JST
        (utc(2024, 6, 2, 12, 0), utc(2024, 6, 3, 0, 0)),  # Sun 21:00 JST
        (utc(2024, 6, 6, 23, 0), utc(2024, 6, 7, 0, 0)),  # Thu 23:00 UTC is Fri 08:00 JST
        (utc(2024, 6, 7, 8, 0), utc(2024, 6, 10, 0, 0)),  # Fri 17:00 JST: after the weekend
        (utc(2024, 6, 7, 20, 0), utc(2024, 6, 10, 0, 0)),  # Fri 20:00 UTC is Sat in Tokyo
    ],
)
def test_it_opens_a_tokyo_office_window_at_utc_instants(at: datetime, expected: datetime) -> None:
    assert next_open(OFFICE, TOKYO, at) == expected


def test_it_returns_utc_whatever_zone_it_was_given() -> None:
    at = datetime(2024, 6, 3, 10, 0, tzinfo=TOKYO)

    opened = next_open(OFFICE, TOKYO, at)

    assert opened == utc(2024, 6, 3, 1, 0)
    assert opened.tzinfo == UTC


def test_it_skips_the_weekend_across_berlins_spring_forward() -> None:
    # Fri 29 March 2024 17:30 CET; clocks go forward on Sunday; Monday 09:00 is CEST.
    assert next_open(OFFICE, BERLIN, utc(2024, 3, 29, 16, 30)) == utc(2024, 4, 1, 7, 0)


def test_it_opens_a_start_skipped_by_spring_forward_when_the_clock_jumps() -> None:
    window = SendWindow(start=time(2, 30), end=time(5, 0))

    # 31 March 2024, 01:00 CET: at 02:00 the clock jumps to 03:00, so there is no 02:30.
    opened = next_open(window, BERLIN, utc(2024, 3, 31, 0, 0))

    assert opened == utc(2024, 3, 31, 1, 0)
    assert opened.astimezone(BERLIN).time() == time(3, 0)
    # The next day 02:30 exists again, and is CEST.
    assert next_open(window, BERLIN, utc(2024, 3, 31, 3, 0)) == utc(2024, 4, 1, 0, 30)


def test_it_keeps_open_through_the_repeated_hour_of_fall_back() -> None:
    window = SendWindow(start=time(0, 0), end=time(2, 30))

    # 27 October 2024: 02:00-03:00 happens twice in Berlin, first CEST then CET.
    second_0215 = utc(2024, 10, 27, 1, 15)
    assert next_open(window, BERLIN, second_0215) == second_0215
    # The window closes at the second 02:30 and opens again at midnight CET.
    assert next_open(window, BERLIN, utc(2024, 10, 27, 1, 30)) == utc(2024, 10, 27, 23, 0)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Fri 8 March 2024 17:00 EST -> Mon 11 March 09:00 EDT (clocks moved on Sunday).
        (utc(2024, 3, 8, 22, 0), utc(2024, 3, 11, 13, 0)),
        # Fri 1 November 2024 17:00 EDT -> Mon 4 November 09:00 EST.
        (utc(2024, 11, 1, 21, 0), utc(2024, 11, 4, 14, 0)),
        # Sun 10 March 2024 02:30 does not exist; Monday is still the next opening.
        (utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 13, 0)),
    ],
)
def test_it_follows_new_york_across_dst(at: datetime, expected: datetime) -> None:
    assert next_open(OFFICE, NEW_YORK, at) == expected


def test_it_keeps_a_window_ending_at_midnight_open_until_midnight() -> None:
    friday_evening = SendWindow(days=frozenset({4}), start=time(20), end=time(0, 0))

    assert next_open(friday_evening, BERLIN, utc(2024, 6, 7, 21, 59)) == utc(2024, 6, 7, 21, 59)
    # 22:00 UTC is Saturday 00:00 in Berlin: closed until next Friday 20:00 CEST.
    assert next_open(friday_evening, BERLIN, utc(2024, 6, 7, 22, 0)) == utc(2024, 6, 14, 18, 0)


def test_it_finds_a_single_day_window_within_a_week() -> None:
    wednesdays = SendWindow(days=frozenset({2}), start=time(9), end=time(10))
    just_closed = utc(2024, 6, 5, 10, 0)  # Wed

    opened = next_open(wednesdays, ZoneInfo("UTC"), just_closed)

    assert opened == utc(2024, 6, 12, 9, 0)
    assert opened - just_closed <= timedelta(days=7)


def test_it_keeps_an_overnight_window_open_past_midnight() -> None:
    nights = SendWindow(days=frozenset({0}), start=time(22), end=time(6))

    # Tuesday 05:00 belongs to Monday's opening.
    assert next_open(nights, ZoneInfo("UTC"), utc(2024, 6, 4, 5, 0)) == utc(2024, 6, 4, 5, 0)
    assert next_open(nights, ZoneInfo("UTC"), utc(2024, 6, 4, 6, 0)) == utc(2024, 6, 10, 22, 0)


def test_it_refuses_a_window_that_never_opens() -> None:
    with pytest.raises(ValueError, match="never opens"):
        next_open(SendWindow(days=frozenset()), BERLIN, utc(2024, 6, 3, 0, 0))


def test_it_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_open(OFFICE, BERLIN, datetime(2024, 6, 3, 9, 0))


@pytest.mark.parametrize(
    ("tz", "start"),
    [(BERLIN, utc(2024, 3, 27)), (BERLIN, utc(2024, 10, 23)), (NEW_YORK, utc(2024, 3, 6))],
)
def test_it_agrees_with_the_wall_clock_through_a_dst_week(tz: ZoneInfo, start: datetime) -> None:
    step = timedelta(minutes=30)
    grid = [start + i * step for i in range(2 * 24 * 14)]

    for at in grid[: len(grid) // 2]:
        # Openings fall on the half hour, so the first grid point inside is the answer.
        expected = next(t for t in grid if t >= at and wall_inside(OFFICE, tz, t))
        assert next_open(OFFICE, tz, at) == expected, at.isoformat()


def test_it_describes_itself_in_the_definitions_words() -> None:
    assert describe_window(OFFICE, TOKYO) == "mon-fri 09:00-17:00 Asia/Tokyo"
    weekend_nights = SendWindow(days=frozenset({0, 2, 5, 6}), start=time(20), end=time(0, 0))
    assert describe_window(weekend_nights, BERLIN) == "mon,wed,sat,sun 20:00-24:00 Europe/Berlin"
