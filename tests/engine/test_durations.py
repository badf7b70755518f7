"""Durations, days and times of day as funnel definitions write them."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from app.engine.durations import (
    format_days,
    format_duration,
    format_time,
    parse_day,
    parse_days,
    parse_duration,
    parse_time,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0m", timedelta(0)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("2d", timedelta(days=2)),
        ("14d", timedelta(days=14)),
        ("1w", timedelta(weeks=1)),
        (" 3d ", timedelta(days=3)),
    ],
)
def test_it_parses_a_whole_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_it_explains_what_a_duration_looks_like() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("2x")
    assert str(caught.value) == (
        "'2x' is not a duration: write a whole number and a unit, m, h, d or w, like 2d"
    )


@pytest.mark.parametrize("text", ["2", "d", "-1d", "1.5d", "2 d", "", "2D", "2days", "P2D"])
def test_it_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [2, None, 1.5])
def test_it_refuses_a_duration_that_is_not_text(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_it_refuses_a_duration_too_long_for_a_calendar() -> None:
    with pytest.raises(ValueError, match="'99999999999w' is far too long"):
        parse_duration("99999999999w")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0m"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=36), "36h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=7), "1w"),
        (timedelta(days=14), "2w"),
        (timedelta(days=30), "30d"),
        (timedelta(days=1, minutes=1), "1441m"),
    ],
)
def test_it_formats_the_shortest_exact_form(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected
    assert parse_duration(expected) == value


@pytest.mark.parametrize("value", [timedelta(seconds=30), timedelta(minutes=-5)])
def test_it_refuses_to_format_what_the_syntax_cannot_say(value: timedelta) -> None:
    with pytest.raises(ValueError):
        format_duration(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("daily", {0, 1, 2, 3, 4, 5, 6}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat-sun", {5, 6}),
        ("mon,wed,fri", {0, 2, 4}),
        ("Mon-Wed, Fri", {0, 1, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("tuesday", {1}),
        ("weekends", {5, 6}),
    ],
)
def test_it_parses_days(text: str, expected: set[int]) -> None:
    assert parse_days(text) == frozenset(expected)


@pytest.mark.parametrize("text", ["mon-fry", "", "mon,,fri", "every day", "mon-"])
def test_it_refuses_what_is_not_a_set_of_days(text: str) -> None:
    with pytest.raises(ValueError, match="is not a set of days: write daily, a range like"):
        parse_days(text)


def test_it_names_a_wrong_day() -> None:
    assert parse_day("SUN") == 6
    with pytest.raises(ValueError, match="'moon' is not a day"):
        parse_day("moon")


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ({0, 1, 2, 3, 4, 5, 6}, "daily"),
        ({0, 1, 2, 3, 4}, "mon-fri"),
        ({5, 6}, "sat-sun"),
        ({0, 2, 4}, "mon,wed,fri"),
        ({0, 1, 2, 4}, "mon-wed,fri"),
        ({3}, "thu"),
    ],
)
def test_it_formats_days_the_usual_way(days: set[int], expected: str) -> None:
    assert format_days(frozenset(days)) == expected
    assert parse_days(expected) == frozenset(days)


def test_it_refuses_to_format_no_days() -> None:
    with pytest.raises(ValueError):
        format_days(frozenset())


def test_it_parses_times_of_day() -> None:
    assert parse_time("09:00") == time(9, 0)
    assert parse_time("9:30") == time(9, 30)
    assert parse_time("23:59") == time(23, 59)
    assert parse_time("24:00", end=True) == time(0, 0)


@pytest.mark.parametrize("text", ["24:00", "25:00", "9am", "12:60", "0900", ""])
def test_it_refuses_what_is_not_a_start_time(text: str) -> None:
    with pytest.raises(ValueError, match="write HH:MM on the 24-hour clock, from 00:00 to 23:59"):
        parse_time(text)


def test_it_allows_midnight_only_as_an_end() -> None:
    with pytest.raises(ValueError, match="from 00:00 to 24:00"):
        parse_time("24:01", end=True)


def test_it_formats_times_with_midnight_as_an_end() -> None:
    assert format_time(time(9, 0)) == "09:00"
    assert format_time(time(0, 0)) == "00:00"
    assert format_time(time(0, 0), end=True) == "24:00"
    with pytest.raises(ValueError):
        format_time(time(9, 0, 30))
