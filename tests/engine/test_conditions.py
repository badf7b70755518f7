"""`where` conditions: matching event properties and contacts, spotting impossible sets."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine.conditions import impossible, matches, parse_where
from app.engine.model import Condition


def c(path: str, op: str, value: Any) -> Condition:
    return Condition(path, op, value)


def test_it_matches_when_every_condition_holds() -> None:
    conditions = parse_where({"video": "explainer-1", "percent": {"gte": 50}})
    assert matches(conditions, {"video": "explainer-1", "percent": 75})
    assert not matches(conditions, {"video": "explainer-1", "percent": 20})
    assert not matches(conditions, {"video": "other", "percent": 75})


def test_it_matches_anything_with_no_conditions() -> None:
    assert matches((), {})


def test_it_treats_a_missing_property_as_no_match_except_for_ne() -> None:
    assert not matches([c("form", "eq", "contact-us")], {})
    assert not matches([c("percent", "lt", 10)], {})
    assert not matches([c("plan", "in", ("pro",))], {})
    assert not matches([c("tags", "contains", "vip")], {})
    assert matches([c("form", "ne", "contact-us")], {})


def test_it_compares_equality_without_mixing_bools_and_numbers() -> None:
    assert matches([c("paid", "eq", True)], {"paid": True})
    assert not matches([c("paid", "eq", True)], {"paid": 1})
    assert not matches([c("count", "eq", 1)], {"count": True})
    assert matches([c("count", "eq", 1)], {"count": 1.0})
    assert not matches([c("count", "eq", 5)], {"count": "5"})
    assert matches([c("form", "ne", "a")], {"form": "b"})
    assert not matches([c("form", "ne", "a")], {"form": "a"})


@pytest.mark.parametrize(
    ("op", "below", "at", "above"),
    [
        ("gt", False, False, True),
        ("gte", False, True, True),
        ("lt", True, False, False),
        ("lte", True, True, False),
    ],
)
def test_it_compares_numbers_at_the_boundary(op: str, below: bool, at: bool, above: bool) -> None:
    assert matches([c("percent", op, 50)], {"percent": 49.5}) is below
    assert matches([c("percent", op, 50)], {"percent": 50}) is at
    assert matches([c("percent", op, 50)], {"percent": 51}) is above


@pytest.mark.parametrize("actual", ["60", True, None, [60], {"value": 60}])
def test_it_never_compares_numbers_with_anything_else(actual: object) -> None:
    assert not matches([c("percent", "gt", 50)], {"percent": actual})


def test_it_never_compares_against_a_value_that_is_not_a_number() -> None:
    assert not matches([c("percent", "gt", "50")], {"percent": 60})


def test_it_matches_in_against_a_list_of_values() -> None:
    assert matches([c("plan", "in", ("pro", "team"))], {"plan": "team"})
    assert not matches([c("plan", "in", ("pro", "team"))], {"plan": "free"})
    assert matches([c("plan", "in", ["pro"])], {"plan": "pro"})
    assert not matches([c("plan", "in", "pro")], {"plan": "pro"})


def test_it_matches_contains_in_text_and_in_lists() -> None:
    assert matches([c("url", "contains", "pricing")], {"url": "https://x.test/pricing#top"})
    assert not matches([c("url", "contains", "demo")], {"url": "https://x.test/pricing"})
    assert matches([c("tags", "contains", "vip")], {"tags": ["new", "vip"]})
    assert not matches([c("tags", "contains", "vip")], {"tags": ["new"]})
    assert not matches([c("count", "contains", "1")], {"count": 12})
    assert not matches([c("url", "contains", 1)], {"url": "a1"})


def test_it_reads_contact_attributes_for_contact_paths() -> None:
    condition = [c("contact.country", "eq", "FR")]
    assert matches(condition, {}, {"country": "FR"})
    assert not matches(condition, {"country": "FR"}, {"country": "DE"})
    assert not matches(condition, {"country": "FR"})
    assert matches([c("contact.country", "ne", "FR")], {}, None)


def test_it_reads_nested_properties_by_dotted_path() -> None:
    condition = [c("page.path", "eq", "/pricing")]
    assert matches(condition, {"page": {"path": "/pricing"}})
    assert not matches(condition, {"page": "/pricing"})
    assert not matches(condition, {"page": {"title": "Pricing"}})
    # A key that itself has a dot is read as written, first.
    assert matches(condition, {"page.path": "/pricing", "page": {"path": "/other"}})
    assert matches([c("contact.company.size", "gte", 50)], {}, {"company": {"size": 80}})


@pytest.mark.parametrize("properties", [None, [], "text", {"percent": float("nan")}])
def test_it_never_raises_on_odd_data(properties: Any) -> None:
    assert not matches([c("percent", "gte", 50)], properties)
    assert not matches([c("percent", "between", 50)], {"percent": 60})


def test_it_parses_a_bare_value_as_eq_and_an_operator_map_as_several_conditions() -> None:
    conditions = parse_where(
        {"video": "explainer-1", "percent": {"gte": 50, "lt": 100}, "plan": {"in": ["a", "b"]}}
    )
    assert conditions == (
        c("video", "eq", "explainer-1"),
        c("percent", "gte", 50),
        c("percent", "lt", 100),
        c("plan", "in", ("a", "b")),
    )
    hash(conditions)  # in-lists become tuples, so conditions stay hashable


def test_it_refuses_an_operator_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="'between' is not a way to compare"):
        parse_where({"percent": {"between": [1, 2]}})


@pytest.mark.parametrize(
    ("conditions", "reason"),
    [
        (
            [c("percent", "gte", 50), c("percent", "lt", 10)],
            "'percent' cannot be both at least 50 and below 10",
        ),
        (
            [c("percent", "gt", 10), c("percent", "lte", 10)],
            "'percent' cannot be both above 10 and at most 10",
        ),
        ([c("n", "eq", 5), c("n", "gt", 7)], "'n' cannot equal 5 and also be above 7"),
        ([c("n", "eq", "abc"), c("n", "lt", 7)], "'n' cannot equal 'abc' and also be below 7"),
        (
            [c("form", "eq", "a"), c("form", "ne", "a")],
            "'form' cannot both equal 'a' and not equal it",
        ),
        ([c("form", "eq", "a"), c("form", "eq", "b")], "'form' cannot equal both 'a' and 'b'"),
        ([c("plan", "in", ())], "'plan' must be one of an empty list, so nothing can match"),
        (
            [c("plan", "eq", "free"), c("plan", "in", ("pro", "team"))],
            "'plan' must equal 'free', which is not one of ['pro', 'team']",
        ),
        (
            [c("plan", "in", ("a", "b")), c("plan", "in", ("c",))],
            "'plan' must be one of ['a', 'b'] and also one of ['c']",
        ),
    ],
)
def test_it_explains_conditions_that_can_never_match(
    conditions: list[Condition], reason: str
) -> None:
    assert impossible(conditions) == [reason]


@pytest.mark.parametrize(
    "conditions",
    [
        [c("percent", "gte", 10), c("percent", "lte", 10)],
        [c("percent", "gt", 5), c("percent", "lt", 10)],
        [c("n", "eq", 5), c("n", "gte", 5)],
        [c("n", "eq", 1), c("n", "eq", 1.0)],
        [c("plan", "eq", "a"), c("plan", "in", ("a", "b"))],
        [c("plan", "eq", "a"), c("plan", "ne", "b")],
        [c("a", "eq", 1), c("b", "eq", 2), c("a", "gt", 0)],
        [c("tags", "contains", "x"), c("tags", "contains", "y")],
    ],
)
def test_it_finds_nothing_wrong_with_conditions_that_can_match(
    conditions: list[Condition],
) -> None:
    assert impossible(conditions) == []


def test_it_keeps_paths_apart_and_reports_each() -> None:
    reasons = impossible([c("a", "gt", 5), c("b", "eq", 1), c("a", "lt", 1), c("b", "eq", 2)])
    assert reasons == [
        "'a' cannot be both above 5 and below 1",
        "'b' cannot equal both 1 and 2",
    ]
