"""The canonical form of a funnel: the definition syntax, written one way, read back equal."""

from __future__ import annotations

import io
import json
from datetime import time, timedelta

import pytest
from ruamel.yaml import YAML

from app.engine.definition import validate_text
from app.engine.model import (
    Cap,
    Condition,
    EmailStep,
    Exit,
    FunnelDef,
    SendWindow,
    Stage,
    Transition,
    Trigger,
)
from app.engine.serialize import funnel_from_dict, funnel_to_dict, where_to_dict
from tests.engine.examples import EXAMPLE

EVERYTHING = FunnelDef(
    key="all-keys",
    name="Every key",
    topic="news",
    priority=-3,
    entry=Trigger("signed_up", (Condition("contact.country", "in", ("FR", "BE")),)),
    exits=(
        Exit("bought", (Condition("plan", "eq", "pro"), Condition("plan", "ne", "free")), "won"),
        Exit("unsubscribed"),
    ),
    caps=(Cap(2, timedelta(hours=36)),),
    send_window=SendWindow(
        frozenset({0, 2, 3, 4}), time(8, 30), time(0, 0), "Europe/Paris", "Asia/Tokyo"
    ),
    stages=(
        Stage(
            "hello",
            (EmailStep("hello", timedelta(0)), EmailStep("tips", timedelta(minutes=90))),
            (
                Transition("hello", on=Trigger("clicked", (Condition("tags", "contains", "vip"),))),
                Transition("hello", after=timedelta(days=14)),
            ),
        ),
    ),
    reentry=True,
    on_cap="skip",
    tracking=False,
    moved={"old": "hello"},
)


def example() -> FunnelDef:
    funnel = validate_text(EXAMPLE).funnel
    assert funnel is not None
    return funnel


def dump_yaml(data: dict[str, object]) -> str:
    stream = io.StringIO()
    YAML().dump(data, stream)
    return stream.getvalue()


def test_it_writes_the_example_in_the_definition_syntax() -> None:
    assert funnel_to_dict(example()) == {
        "key": "b2b-nurture",
        "name": "From eBook to demo",
        "topic": "nurture",
        "priority": 0,
        "entry": {"on": "ebook_downloaded", "where": {"ebook": "seven-fundamentals"}},
        "exit": [{"on": "form_submitted", "where": {"form": "contact-us"}, "as": "converted"}],
        "caps": [{"max": 1, "per": "1d"}, {"max": 3, "per": "1w"}],
        "send_window": {"days": "mon-fri", "from": "09:00", "to": "17:00", "timezone": "contact"},
        "stages": [
            {
                "key": "read_ebook",
                "emails": [
                    {"template": "ebook-welcome", "after": "0m"},
                    {"template": "video1-invite", "after": "2d"},
                ],
                "transitions": [
                    {
                        "on": "video_watched",
                        "where": {"video": "explainer-1", "percent": {"gte": 50}},
                        "to": "watched_video1",
                    },
                    {"after": "2w", "to": "dormant"},
                ],
            },
            {
                "key": "watched_video1",
                "emails": [{"template": "quiz-invite", "after": "1h"}],
                "transitions": [{"on": "quiz_taken", "to": "took_quiz"}],
            },
            {"key": "took_quiz", "transitions": [{"after": "30d", "to": "dormant"}]},
            {"key": "dormant", "emails": [{"template": "dormant-nudge", "after": "0m"}]},
        ],
    }


def test_it_writes_every_extension_key_that_is_not_the_default() -> None:
    data = funnel_to_dict(EVERYTHING)
    assert data["entry"] == {"on": "signed_up", "where": {"contact.country": {"in": ["FR", "BE"]}}}
    assert data["exit"] == [
        {"on": "bought", "where": {"plan": {"eq": "pro", "ne": "free"}}, "as": "won"},
        {"on": "unsubscribed", "as": "exited"},
    ]
    assert data["caps"] == [{"max": 2, "per": "36h"}]
    assert data["send_window"] == {
        "days": "mon,wed-fri",
        "from": "08:30",
        "to": "24:00",
        "timezone": "Europe/Paris",
        "fallback_timezone": "Asia/Tokyo",
    }
    assert data["stages"][0]["emails"][1] == {"template": "tips", "after": "90m"}
    assert data["stages"][0]["transitions"][0]["where"] == {"tags": {"contains": "vip"}}
    assert data["priority"] == -3
    assert (data["reentry"], data["on_cap"], data["tracking"]) == (True, "skip", False)
    assert data["moved"] == {"old": "hello"}


def test_it_leaves_out_defaults_and_empty_lists() -> None:
    funnel = FunnelDef(
        "k", "n", "t", Trigger("e"), (Stage("s", (), (Transition("s", after=timedelta(days=1)),)),)
    )
    assert funnel_to_dict(funnel) == {
        "key": "k",
        "name": "n",
        "topic": "t",
        "priority": 0,
        "entry": {"on": "e"},
        "stages": [{"key": "s", "transitions": [{"after": "1d", "to": "s"}]}],
    }


@pytest.mark.parametrize("funnel", [EVERYTHING, example()], ids=["everything", "example"])
def test_it_reads_back_what_it_writes(funnel: FunnelDef) -> None:
    data = funnel_to_dict(funnel)
    assert funnel_from_dict(data) == funnel
    assert funnel_from_dict(json.loads(json.dumps(data))) == funnel
    assert FunnelDef.from_dict(funnel.to_dict()) == funnel


@pytest.mark.parametrize("funnel", [EVERYTHING, example()], ids=["everything", "example"])
def test_it_reads_back_its_yaml_export(funnel: FunnelDef) -> None:
    result = validate_text(dump_yaml(funnel_to_dict(funnel)))
    assert result.problems == ()
    assert result.funnel == funnel


def test_it_writes_the_same_form_however_the_file_was_written() -> None:
    spelled_out = (
        EXAMPLE.replace(
            "exit:  {on: form_submitted, where: {form: contact-us}, as: converted}",
            "exit: [{on: form_submitted, where: {form: {eq: contact-us}}, as: converted}]",
        )
        .replace("days: mon-fri", "days: [mon, tue, wed, thu, fri]")
        .replace("per: 7d", "per: 1w")
    )
    funnel = validate_text(spelled_out).funnel
    assert funnel is not None
    assert funnel_to_dict(funnel) == funnel_to_dict(example())


def test_it_loads_a_stored_definition_even_if_its_meaning_has_a_flaw() -> None:
    # Versions are checked in full when saved; loading one later only needs its shape.
    data = funnel_to_dict(example())
    data["caps"] = [{"max": 5, "per": "1d"}, {"max": 2, "per": "7d"}]
    assert funnel_from_dict(data).caps == (Cap(5, timedelta(days=1)), Cap(2, timedelta(days=7)))


def test_it_refuses_to_read_a_stored_definition_of_the_wrong_shape() -> None:
    data = funnel_to_dict(example())
    data["caps"] = [{"max": 5, "per": "1 day"}]
    with pytest.raises(ValueError, match=r"caps\[0\]\.per: '1 day' is not a duration"):
        funnel_from_dict(data)


def test_it_writes_where_with_bare_values_only_for_a_lone_eq() -> None:
    assert where_to_dict(
        (
            Condition("video", "eq", "x"),
            Condition("percent", "eq", 50),
            Condition("percent", "ne", 60),
            Condition("plan", "in", ("a",)),
        )
    ) == {"video": "x", "percent": {"eq": 50, "ne": 60}, "plan": {"in": ["a"]}}


@pytest.mark.parametrize(
    "funnel",
    [
        FunnelDef(
            "k", "n", "t", Trigger("e", (Condition("a", "gt", 1), Condition("a", "gt", 2))), ()
        ),
        FunnelDef(
            "k", "n", "t", Trigger("e"), (Stage("s", (EmailStep("x", timedelta(seconds=5)),)),)
        ),
        FunnelDef("k", "n", "t", Trigger("e"), (Stage("s", (), (Transition("s"),)),)),
    ],
    ids=["two-gt-on-one-path", "seconds", "transition-without-on-or-after"],
)
def test_it_refuses_to_write_what_the_syntax_cannot_say(funnel: FunnelDef) -> None:
    with pytest.raises(ValueError):
        funnel_to_dict(funnel)
