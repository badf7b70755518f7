"""Funnels that enter, move and exit on segments: syntax, round trip, the machine."""

from __future__ import annotations

import pytest

from app.engine import machine
from app.engine.definition import validate_text
from app.engine.model import Exit, Transition, Trigger
from app.engine.serialize import funnel_from_dict, funnel_to_dict

FUNNEL = """\
key: customers
name: Customers by value
topic: nurture
entry: {segment: buyers}
exit:
  - {segment: churned, as: lost}
  - {on: account_closed}
stages:
  - key: regular
    transitions:
      - {if: {segment: loyal}, to: loyal}
      - {if: {segment: high-value}, to: vip}
  - key: loyal
    transitions:
      - {if: {segment: high-value}, to: vip}
  - key: vip
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.field, p.message) for p in validate_text(text).problems]


def test_it_reads_segment_entries_transitions_and_exits() -> None:
    funnel = validate_text(FUNNEL).funnel
    assert funnel is not None
    assert funnel.entry == Trigger("", segment="buyers")
    assert funnel.exits == (Exit("", as_="lost", segment="churned"), Exit("account_closed"))
    assert funnel.stages[0].transitions == (
        Transition("loyal", segment="loyal"),
        Transition("vip", segment="high-value"),
    )
    assert funnel.segments() == {"buyers", "churned", "loyal", "high-value"}
    assert funnel_from_dict(funnel_to_dict(funnel)) == funnel
    assert funnel_to_dict(funnel)["entry"] == {"segment": "buyers"}


def test_it_moves_and_exits_on_joining_a_segment() -> None:
    funnel = validate_text(FUNNEL).funnel
    assert funnel is not None
    assert machine.entry_on_segment(funnel, "buyers")
    assert not machine.entry_matches(funnel, "", {}, {})  # no event type is empty
    assert machine.on_segment(funnel, "regular", "high-value") == machine.Move("vip")
    assert machine.on_segment(funnel, "vip", "loyal") is None
    assert machine.on_segment(funnel, "loyal", "churned") == machine.ExitGoal("lost")


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            "entry: {segment: buyers}",
            "entry: {segment: buyers, on: purchase_completed}",
            "entry",
            "this is either 'on' an event (with 'where') or joining a 'segment', not both: "
            "keep one",
        ),
        (
            "{if: {segment: loyal}, to: loyal}",
            "{if: {segment: loyal}, after: 2d, to: loyal}",
            "stages[0].transitions[0]",
            "a transition has either 'if' (a segment) or 'after' (a wait), not both: split it "
            "into two transitions",
        ),
        (
            "{if: {segment: loyal}, to: loyal}",
            "{if: {segment: loyal}, on: purchase_completed, to: loyal}",
            "stages[0].transitions[0]",
            "a transition has either 'on' (an event) or 'if' (a segment), not both: split it "
            "into two transitions",
        ),
        (
            "{if: {segment: loyal}, to: loyal}",
            "{if: {segmnt: loyal}, to: loyal}",
            "stages[0].transitions[0].if.segmnt",
            "'segmnt' cannot go in 'if', which takes one segment, like {segment: high-value}",
        ),
    ],
)
def test_it_explains_a_wrong_segment_trigger(old: str, new: str, field: str, message: str) -> None:
    found = problems(FUNNEL.replace(old, new, 1))
    assert [(f, m) for _, f, m in found if f == field] == [(field, message)]


def test_it_refuses_a_second_transition_on_the_same_segment() -> None:
    text = FUNNEL.replace(
        "      - {if: {segment: high-value}, to: vip}\n  - key: loyal",
        "      - {if: {segment: loyal}, to: vip}\n  - key: loyal",
    )
    assert problems(text) == [
        (
            12,
            "stages[0].transitions[1]",
            "stage 'regular' already moves contacts to 'loyal' when they join segment 'loyal', "
            "so this one never happens",
        )
    ]


def test_it_checks_contact_conditions_against_the_attributes_seen() -> None:
    text = FUNNEL.replace(
        "entry: {segment: buyers}", "entry: {on: signed_up, where: {contact.plan: {gt: 2}}}"
    )
    result = validate_text(text, attribute_kinds={"plan": {"text"}})
    assert [(p.field, p.message) for p in result.problems] == [
        (
            "entry.where.contact.plan",
            "'contact.plan' is text in every contact so far, never a number, so it never matches",
        )
    ]
    assert validate_text(text).ok
