"""Segment definitions: the syntax, and every problem as file:line: field: message."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.engine.model import Condition
from app.engine.segment_checks import segment_from_dict, validate_text
from app.engine.segments import (
    Abandoned,
    All,
    Attributes,
    Consent,
    Count,
    EventKey,
    InStage,
    Member,
    Seen,
    Total,
    Window,
)
from tests.helpers import ROOT

DAY = timedelta(days=1)
PRICING = EventKey("page_viewed", (Condition("page", "eq", "pricing"),))


def problems(text: str, **context: object) -> list[tuple[int | None, str, str]]:
    result = validate_text(text, **context)  # type: ignore[arg-type]
    assert result.segment is None
    return [(p.line, p.field, p.message) for p in result.problems]


def segment(match: str, **context: object):
    result = validate_text(f"key: s\nname: S\nmatch:\n{match}", **context)  # type: ignore[arg-type]
    assert result.ok, result.problems
    return result.segment


def test_it_reads_the_example_segments() -> None:
    cart = validate_text((ROOT / "segments" / "cart-abandoners.yaml").read_text()).segment
    assert cart is not None
    assert cart.match == Abandoned(EventKey("add_to_cart"), "purchase_completed", DAY, 7 * DAY)
    value = validate_text((ROOT / "segments" / "high-value.yaml").read_text()).segment
    assert value is not None
    window = Window(EventKey("purchase_completed"), None, "amount")
    assert value.match == Total(window, (Condition("sum", "gt", 1000),))
    dormant = validate_text((ROOT / "segments" / "dormant-readers.yaml").read_text()).segment
    assert dormant is not None and dormant.key == "dormant-readers"


def test_it_reads_every_kind_of_condition() -> None:
    found = segment(
        "  all:\n"
        "    - {attribute: country, in: [DE, AT]}\n"
        "    - {contact: {company_size: {gte: 50}}}\n"
        "    - {performed: page_viewed, where: {page: pricing}, at_least: 3, within: 7d}\n"
        "    - {not_performed: email_clicked, since: 60d}\n"
        "    - {first_seen: {within: 30d}}\n"
        "    - {count: purchase_completed, gt: 2}\n"
        "    - {consent: {topic: newsletter, is: subscribed}}\n"
        "    - {in_stage: {funnel: b2b-nurture, stage: dormant}}\n"
        "    - not: {segment: high-value}\n"
    )
    assert found.match == All(
        (
            Attributes((Condition("contact.country", "in", ("DE", "AT")),)),
            Attributes((Condition("contact.company_size", "gte", 50),)),
            Count(Window(PRICING, 7 * DAY), 3),
            Count(Window(EventKey("email_clicked"), 60 * DAY), 0, 0),
            Seen("first", within=30 * DAY),
            Count(Window(EventKey("purchase_completed")), 3),
            Consent((), "newsletter", "subscribed"),
            InStage("b2b-nurture", "dormant"),
            found.match.parts[-1],
        )
    )
    assert found.match.parts[-1].part == Member("high-value")
    assert found.refs() == {"high-value"}


def test_it_reads_at_most_as_a_count_that_may_be_zero() -> None:
    found = segment("  {performed: purchase_completed, at_most: 0, within: 24h}\n")
    assert found.match == Count(Window(EventKey("purchase_completed"), DAY), 0, 0)


@pytest.mark.parametrize(
    ("match", "line", "field", "message"),
    [
        (
            "  {performd: add_to_cart}",
            4,
            "match.performd",
            "'performd' is not a kind of condition: start it with all, any, not, attribute, "
            "contact, performed, not_performed, first_seen, last_seen, count, sum, consent, "
            "in_stage, converted_in or segment (did you mean 'performed'?)",
        ),
        (
            "  {performed: add_to_cart, withn: 24h}",
            4,
            "match.withn",
            "'withn' is not a field of a 'performed' condition (did you mean 'within'?)",
        ),
        (
            "  {performed: add_to_cart, within: soon}",
            4,
            "match.within",
            "'soon' is not a duration: write a whole number and a unit, m, h, d or w, like 2d",
        ),
        (
            "  {performed: add_to_cart, for: 24h}",
            3,
            "match",
            "'not_followed_by' and 'for' go together, like {performed: add_to_cart, "
            "not_followed_by: purchase_completed, for: 24h}",
        ),
        (
            "  {sum: purchase_completed, gte: 10}",
            4,
            "match.sum",
            "'purchase_completed' should name an event type and one of its properties, "
            "like purchase_completed.amount",
        ),
        (
            "  {count: purchase_completed}",
            3,
            "match",
            "compare the count with a number, like {count: purchase_completed, gte: 3}",
        ),
        (
            "  all: [{segment: vip}, 5]",
            4,
            "match.all[1]",
            "should be a condition, like {performed: add_to_cart}, but it is a number (5)",
        ),
        (
            "  {all: [], any: []}",
            4,
            "match.all",
            "list at least one condition",
        ),
        (
            "  {consent: {is: subscribed}}",
            4,
            "match.consent",
            "'is' needs the 'topic' it is about, like {topic: newsletter, is: subscribed}",
        ),
    ],
)
def test_it_explains_a_malformed_condition(match: str, line: int, field: str, message: str) -> None:
    found = problems(f"key: s\nname: S\nmatch:\n{match}\n")
    assert (line, field, message) in found


def test_it_names_missing_fields_and_an_empty_file() -> None:
    assert problems("key: s\nname: S\n") == [(1, "match", "'match' is required but missing")]
    assert problems("") == [
        (None, "(file)", "the file is empty: a segment needs at least key, name and match")
    ]


@pytest.mark.parametrize(
    ("match", "field", "message"),
    [
        (
            "{performed: add_to_cart, at_least: 3, at_most: 1}",
            "match",
            "no count is at least 3 and also at most 1, so no one matches",
        ),
        (
            "{performed: a, not_followed_by: b, for: 24h, within: 24h}",
            "match.within",
            "'within' must be longer than 'for': the wait has to end before the event is "
            "too old to count, or no one is ever a member",
        ),
        (
            "{not_performed: email_clicked, since: 0m}",
            "match.since",
            "is no time at all: write a window, like 24h or 60d",
        ),
        (
            "{sum: purchase_completed.amount, gt: 10, lt: 5}",
            "match",
            "these conditions can never all hold: 'sum' cannot be both above 10 and below 5",
        ),
        (
            "{performed: video_watched, where: {percent: {gt: 90, lt: 10}}}",
            "match.where",
            "these conditions can never all hold: 'percent' cannot be both above 90 and below 10",
        ),
        (
            "{first_seen: {within: 7d, before: 30d}}",
            "match",
            "'within' must be longer than 'before', or no one matches",
        ),
    ],
)
def test_it_refuses_conditions_no_one_can_meet(match: str, field: str, message: str) -> None:
    assert problems(f"key: s\nname: S\nmatch: {match}\n") == [(3, field, message)]


def test_it_refuses_unknown_segments_and_circles() -> None:
    text = (
        "key: a\nname: A\nmatch:\n  all:\n"
        "    - {segment: hig-value}\n"
        "    - {segment: b}\n"
        "    - {segment: a}\n"
    )
    known = {"high-value": set(), "b": {"a"}}
    assert problems(text, known=known) == [
        (5, "match.all[0].segment", "there is no segment 'hig-value' (did you mean 'high-value'?)"),
        (6, "match.all[1].segment", "segments cannot refer to each other in a circle: a -> b -> a"),
        (7, "match.all[2].segment", "segments cannot refer to each other in a circle: a -> a"),
    ]


def test_it_checks_funnels_and_stages_when_it_knows_them() -> None:
    text = (
        "key: s\nname: S\nmatch:\n  any:\n"
        "    - {in_stage: {funnel: b2b-nurture, stage: dormnt}}\n"
        "    - {converted_in: b2b-nurtur}\n"
    )
    assert problems(text, funnels={"b2b-nurture": {"dormant", "read_ebook"}}) == [
        (5, "match.any[0].in_stage.stage",
         "funnel 'b2b-nurture' has no stage 'dormnt' (did you mean 'dormant'?)"),
        (6, "match.any[1].converted_in",
         "there is no funnel 'b2b-nurtur' (did you mean 'b2b-nurture'?)"),
    ]  # fmt: skip


def test_it_checks_contact_attributes_against_the_values_seen_so_far() -> None:
    text = "key: s\nname: S\nmatch: {contact: {company_size: {gte: 50}}}\n"
    kinds = {"company_size": {"text"}}
    assert problems(text, attribute_kinds=kinds) == [
        (3, "match", "'contact.company_size' is text in every contact so far, never a number, "
         "so no one matches"),
    ]  # fmt: skip
    assert validate_text(text, attribute_kinds={"company_size": {"text", "number"}}).ok
    assert validate_text(text, attribute_kinds={}).ok  # a new attribute is not judged


def test_it_reads_a_stored_definition_back() -> None:
    data = {"key": "s", "name": "S", "match": {"segment": "vip"}}
    assert segment_from_dict(data).match == Member("vip")
    with pytest.raises(ValueError, match="match"):
        segment_from_dict({"key": "s", "name": "S"})
