"""Definition shape: YAML syntax, fields, types and values, each named by line and field."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from app.engine.definition import Problem, ValidationResult, validate_data, validate_text
from app.engine.model import Condition, Exit, SendWindow, Trigger
from tests.engine.examples import EXAMPLE

MINIMAL = """\
key: welcome
name: Welcome
topic: news
entry: {on: signed_up}
stages:
  - key: hello
    emails: [{template: hello}]
    transitions: [{after: 1d, to: hello}]
"""


def edit(old: str, new: str, text: str = EXAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def problems(text: str) -> list[tuple[int | None, str, str]]:
    result = validate_text(text)
    assert result.funnel is None
    return [(p.line, p.field, p.message) for p in result.problems]


def test_it_accepts_the_example_and_builds_the_funnel() -> None:
    result = validate_text(EXAMPLE)
    assert result.ok
    assert result.problems == ()
    funnel = result.funnel
    assert funnel is not None
    assert funnel.key == "b2b-nurture"
    assert funnel.entry == Trigger(
        "ebook_downloaded", (Condition("ebook", "eq", "seven-fundamentals"),)
    )
    assert funnel.exits == (
        Exit("form_submitted", (Condition("form", "eq", "contact-us"),), "converted"),
    )
    assert [str(cap) for cap in funnel.caps] == ["1/1d", "3/1w"]
    assert funnel.send_window == SendWindow(
        frozenset(range(5)), time(9), time(17), "contact", "UTC"
    )
    assert [s.key for s in funnel.stages] == [
        "read_ebook",
        "watched_video1",
        "took_quiz",
        "dormant",
    ]
    first = funnel.stages[0]
    assert [(e.template, e.after) for e in first.emails] == [
        ("ebook-welcome", timedelta(0)),
        ("video1-invite", timedelta(days=2)),
    ]
    assert first.transitions[0].on == Trigger(
        "video_watched", (Condition("video", "eq", "explainer-1"), Condition("percent", "gte", 50))
    )
    assert first.transitions[1].after == timedelta(days=14)
    assert first.transitions[1].to == "dormant"


def test_it_fills_in_defaults() -> None:
    funnel = validate_text(MINIMAL).funnel
    assert funnel is not None
    assert (funnel.priority, funnel.exits, funnel.caps, funnel.send_window) == (0, (), (), None)
    assert (funnel.reentry, funnel.on_cap, funnel.tracking, funnel.moved) == (
        False,
        "defer",
        True,
        {},
    )
    assert funnel.stages[0].emails[0].after == timedelta(0)
    with_exit = validate_text(MINIMAL + "exit: [{on: bought}]\nsend_window: {}\n").funnel
    assert with_exit is not None
    assert with_exit.exits == (Exit("bought", (), "exited"),)
    assert with_exit.send_window == SendWindow(
        frozenset(range(7)), time(0), time(0), "contact", "UTC"
    )


def test_it_reads_the_extension_keys() -> None:
    text = MINIMAL + (
        "priority: 5\nreentry: true\non_cap: skip\ntracking: false\n"
        "description: Says hello.\nmoved: {old_hello: hello}\n"
        "send_window: {days: [sat, sun], to: '24:00', timezone: Europe/Paris,"
        " fallback_timezone: America/New_York}\n"
    )
    funnel = validate_text(text).funnel
    assert funnel is not None
    assert (funnel.priority, funnel.reentry, funnel.on_cap, funnel.tracking) == (
        5,
        True,
        "skip",
        False,
    )
    assert funnel.moved == {"old_hello": "hello"}
    assert funnel.send_window == SendWindow(
        frozenset({5, 6}), time(0), time(0), "Europe/Paris", "America/New_York"
    )


def test_it_reads_json_with_lines() -> None:
    text = (
        '{"key": "welcome", "name": "Welcome", "topic": "news",\n'
        ' "entry": {"on": "signed_up"},\n'
        ' "stages": [{"key": "hello",\n'
        '             "emails": [{"template": "hello", "after": 5}]}]}\n'
    )
    assert problems(text) == [
        (
            4,
            "stages[0].emails[0].after",
            "5 is not a duration: write a whole number and a unit, m, h, d or w, like 2d",
        )
    ]


def test_it_names_an_unknown_field_and_suggests_the_known_one() -> None:
    text = edit("    transitions:\n      - {on: video", "    transitons:\n      - {on: video")
    assert problems(text) == [
        (13, "stages[0].transitons", "unknown field 'transitons' (did you mean 'transitions'?)")
    ]


def test_it_names_an_unknown_field_with_nothing_close() -> None:
    assert problems(EXAMPLE + "colour: blue\n") == [(23, "colour", "unknown field 'colour'")]


def test_it_names_a_missing_field_at_its_parent() -> None:
    assert problems(edit("topic: nurture\n", "")) == [
        (1, "topic", "'topic' is required but missing")
    ]
    text = edit("[{on: quiz_taken, to: took_quiz}]", "[{on: quiz_taken}]")
    assert problems(text) == [(18, "stages[1].transitions[0].to", "'to' is required but missing")]


def test_it_names_the_stage_of_a_problem_inside_it() -> None:
    result = validate_text(edit("{after: 30d, to: dormant}", "{after: 30d, to: Dormant}"))
    assert result.problems == (
        Problem(
            20,
            "stages[2].transitions[0].to",
            "'Dormant' can only use lowercase letters, digits, dashes and underscores, "
            "like b2b-nurture",
            "took_quiz",
        ),
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "key: b2b-nurture",
            "key: B2B Nurture",
            (
                1,
                "key",
                "'B2B Nurture' can only use lowercase letters, digits, dashes and "
                "underscores, like b2b-nurture",
            ),
        ),
        ("name: From eBook to demo", "name:", (2, "name", "is empty: write a value here")),
        (
            "topic: nurture",
            "topic: 2024",
            (3, "topic", "should be text, but it is a number (2024); put it in quotes"),
        ),
        (
            "topic: nurture",
            "topic: nurture\npriority: high",
            (4, "priority", "should be a whole number, but it is text ('high')"),
        ),
        (
            "{template: ebook-welcome, after: 0m}",
            "{template: ebook welcome, after: 0m}",
            (
                11,
                "stages[0].emails[0].template",
                "'ebook welcome' is not a template name: use "
                "letters, digits, dashes and underscores, like ebook-welcome",
            ),
        ),
        (
            "{template: video1-invite, after: 2d}",
            "{template: video1-invite, after: 2x}",
            (
                12,
                "stages[0].emails[1].after",
                "'2x' is not a duration: write a whole number and a unit, m, h, d or w, like 2d",
            ),
        ),
        (
            "{max: 1, per: 1d}",
            "{max: 0, per: 1d}",
            (6, "caps[0].max", "must be at least 1: a cap of 0 would stop every email"),
        ),
        (
            "{max: 3, per: 7d}",
            "{max: 3, per: 0d}",
            (
                6,
                "caps[1].per",
                "'0d' is no time at all: a cap counts emails over a window, like 1d",
            ),
        ),
        (
            "stages:\n",
            "on_cap: drop\nstages:\n",
            (8, "on_cap", "'drop' is not allowed here: use defer or skip"),
        ),
        (
            "topic: nurture",
            "topic: nurture\nreentry: maybe",
            (4, "reentry", "should be true or false, but it is text ('maybe')"),
        ),
    ],
)
def test_it_explains_a_wrong_value(old: str, new: str, expected: tuple[int, str, str]) -> None:
    assert problems(edit(old, new)) == [expected]


def test_it_needs_at_least_one_stage() -> None:
    text = MINIMAL.split("stages:")[0] + "stages: []\n"
    assert problems(text) == [(5, "stages", "a funnel needs at least one stage")]


@pytest.mark.parametrize(
    ("transition", "message"),
    [
        (
            "{on: quiz_taken, after: 2d, to: took_quiz}",
            "a transition has either 'on' (an event) or 'after' (a wait), not both: "
            "split it into two transitions",
        ),
        (
            "{to: took_quiz}",
            "a transition needs 'on' (an event) or 'after' (a wait) to say when contacts move",
        ),
        (
            "{after: 2d, where: {quiz: q1}, to: took_quiz}",
            "'where' tests the properties of an event, so it needs 'on'",
        ),
    ],
)
def test_it_needs_a_transition_to_have_on_or_after(transition: str, message: str) -> None:
    text = edit("[{on: quiz_taken, to: took_quiz}]", f"[{transition}]")
    assert problems(text) == [(18, "stages[1].transitions[0]", message)]


@pytest.mark.parametrize(
    ("where", "field", "message"),
    [
        ("{percent: {gt: abc}}", "percent.gt", "gt compares numbers, but 'abc' is text"),
        (
            "{percent: {lte: true}}",
            "percent.lte",
            "lte compares numbers, but true is true/false (true)",
        ),
        (
            "{plan: {in: pro}}",
            "plan.in",
            "in needs a list of values, like [a, b], but this is text",
        ),
        (
            "{plan: [pro, team]}",
            "plan",
            "a list of values needs 'in', like {in: [a, b]}; 'contains' tests for one value "
            "in a list property",
        ),
        (
            "{percent: {gtt: 5}}",
            "percent.gtt",
            "'gtt' is not a comparison: use eq, ne, gt, gte, lt, lte, in or contains "
            "(did you mean 'gt'?)",
        ),
        ("{percent: {}}", "percent", "write at least one comparison, like {gte: 50}"),
        ("{ebook: }", "ebook", "is empty: write a value here"),
        (
            "{ebook: {eq: [a]}}",
            "ebook.eq",
            "should be one value (text, a number, or true/false), but it is a list",
        ),
        ("[ebook]", "", "should be a set of fields (name: value), but it is a list"),
    ],
)
def test_it_explains_a_wrong_where(where: str, field: str, message: str) -> None:
    text = edit("where: {ebook: seven-fundamentals}", f"where: {where}")
    full_field = f"entry.where.{field}" if field else "entry.where"
    assert problems(text) == [(4, full_field, message)]


def test_it_accepts_every_operator_and_contact_paths() -> None:
    where = (
        "{a: 1, b: {eq: x, ne: y}, c: {gt: 1, gte: 1.5, lt: 9, lte: 9}, d: {in: [x, 2, true]},"
        " e: {contains: vip}, contact.country: FR, when: 2024-01-31}"
    )
    funnel = validate_text(edit("where: {ebook: seven-fundamentals}", f"where: {where}")).funnel
    assert funnel is not None
    assert [(w.path, w.op, w.value) for w in funnel.entry.where] == [
        ("a", "eq", 1),
        ("b", "eq", "x"),
        ("b", "ne", "y"),
        ("c", "gt", 1),
        ("c", "gte", 1.5),
        ("c", "lt", 9),
        ("c", "lte", 9),
        ("d", "in", ("x", 2, True)),
        ("e", "contains", "vip"),
        ("contact.country", "eq", "FR"),
        ("when", "eq", "2024-01-31"),  # an unquoted date is the text the marketer typed
    ]


@pytest.mark.parametrize(
    ("window", "field", "message"),
    [
        (
            "{days: mon-fry}",
            "send_window.days",
            "'mon-fry' is not a set of days: write daily, a range like mon-fri, or days like "
            "mon,wed,fri",
        ),
        (
            "{days: [mon, thurs]}",
            "send_window.days[1]",
            "'thurs' is not a day: write mon, tue, wed, thu, fri, sat or sun",
        ),
        ("{days: []}", "send_window.days", "pick at least one day, like [mon, tue]"),
        (
            "{from: 9am}",
            "send_window.from",
            "'9am' is not a time: write HH:MM on the 24-hour clock, from 00:00 to 23:59",
        ),
        (
            "{from: '24:00'}",
            "send_window.from",
            "'24:00' is not a time: write HH:MM on the 24-hour clock, from 00:00 to 23:59",
        ),
        (
            "{to: '25:00'}",
            "send_window.to",
            "'25:00' is not a time: write HH:MM on the 24-hour clock, from 00:00 to 24:00",
        ),
        (
            "{timezone: Europe/Pari}",
            "send_window.timezone",
            "'Europe/Pari' is not a timezone: "
            "use a name like Europe/Paris or America/New_York (did you mean 'Europe/Paris'?)",
        ),
        (
            "{fallback_timezone: contact}",
            "send_window.fallback_timezone",
            "'contact' is not a timezone: use a name like Europe/Paris or America/New_York",
        ),
        (
            "{timezone: Europe}",
            "send_window.timezone",
            "'Europe' is not a timezone: use a name "
            "like Europe/Paris or America/New_York (did you mean 'Europe/Rome'?)",
        ),
    ],
)
def test_it_explains_a_wrong_send_window(window: str, field: str, message: str) -> None:
    text = edit('{days: mon-fri, from: "09:00", to: "17:00", timezone: contact}', window)
    assert problems(text) == [(7, field, message)]


def test_it_reads_exit_as_one_goal_or_a_list() -> None:
    text = edit(
        "exit:  {on: form_submitted, where: {form: contact-us}, as: converted}",
        "exit:\n  - {on: form_submitted, as: converted}\n  - {on: Unsubscribed}",
    )
    assert problems(text) == [
        (
            7,
            "exit[1].on",
            "'Unsubscribed' can only use lowercase letters, digits, dashes and "
            "underscores, like b2b-nurture",
        )
    ]
    text = edit(
        "exit:  {on: form_submitted, where: {form: contact-us}, as: converted}", "exit: done"
    )
    assert problems(text) == [
        (5, "exit", "should be an exit goal (on, where, as) or a list of them, but it is text")
    ]


def test_it_names_a_bad_key_of_moved() -> None:
    assert problems(EXAMPLE + "moved: {Old Stage: dormant}\n") == [
        (
            23,
            "moved.Old Stage",
            "'Old Stage' can only use lowercase letters, digits, dashes and "
            "underscores, like b2b-nurture",
        )
    ]


def test_it_reports_every_shape_problem_in_line_order() -> None:
    text = edit("topic: nurture", "topic: Nurture")
    text = edit(
        "{template: quiz-invite, after: 1h}", "{template: quiz-invite, after: 1 hour}", text
    )
    text = edit("      - {after: 14d, to: dormant}", "      - {after: 14d, too: dormant}", text)
    assert problems(text) == [
        (
            3,
            "topic",
            "'Nurture' can only use lowercase letters, digits, dashes and underscores, "
            "like b2b-nurture",
        ),
        (15, "stages[0].transitions[1].to", "'to' is required but missing"),
        (15, "stages[0].transitions[1].too", "unknown field 'too' (did you mean 'to'?)"),
        (
            17,
            "stages[1].emails[0].after",
            "'1 hour' is not a duration: write a whole number and a unit, m, h, d or w, like 2d",
        ),
    ]


def test_it_skips_the_meaning_while_the_shape_is_wrong() -> None:
    # The transition leads nowhere, but the shape problem is all that is reported.
    text = edit("to: watched_video1}", "to: watchd_video1}")
    assert problems(edit("topic: nurture", "topic: Nurture", text)) == [
        (
            3,
            "topic",
            "'Nurture' can only use lowercase letters, digits, dashes and underscores, "
            "like b2b-nurture",
        )
    ]


def test_it_reports_duplicate_keys_with_their_lines_and_the_other_problems() -> None:
    text = edit("topic: nurture", "topic: nurture\nname: Again")
    text = edit("  - key: took_quiz\n", "  - key: took_quiz\n    key: quiz\n", text)
    text = edit("{template: quiz-invite, after: 1h}", "{template: quiz-invite, after: 1hour}", text)
    assert problems(text) == [
        (4, "name", "'name' is written twice (first on line 2): keep one"),
        (
            18,
            "stages[1].emails[0].after",
            "'1hour' is not a duration: write a whole number and a unit, m, h, d or w, like 2d",
        ),
        (21, "stages[2].key", "'key' is written twice (first on line 20): keep one"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "key: [1\nname: x\n",
            2,
            "the file is not valid YAML or JSON: expected ',' or ']', but got ':'",
        ),
        (
            "key: a: b\n",
            1,
            "the file is not valid YAML or JSON: mapping values are not allowed here",
        ),
        ("key: a\n\tname: b\n", 2, "tabs cannot indent YAML: use spaces"),
        (
            "key: a\n---\nkey: b\n",
            2,
            "the file holds more than one document (---): keep one funnel per file",
        ),
        (
            "key: *nowhere\n",
            1,
            "the file is not valid YAML or JSON: found undefined alias 'nowhere'",
        ),
        (
            "- key: a\n- key: b\n",
            1,
            "the file should describe one funnel as fields (key: value), but it holds a list",
        ),
        (
            "just words\n",
            1,
            "the file should describe one funnel as fields (key: value), but it holds text",
        ),
    ],
)
def test_it_reports_a_file_that_is_not_a_funnel(text: str, line: int, message: str) -> None:
    assert problems(text) == [(line, "(file)", message)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "key: !!int x\n",
            "a value has a YAML tag (like !!int) that does not fit it: remove the tag",
        ),
        ("[" * 5000 + "]" * 5000, "the definition is too large or nests too deeply to be a funnel"),
        ("# " + "x" * 100_000, "the definition is too large or nests too deeply to be a funnel"),
    ],
)
def test_it_reports_a_file_the_loader_cannot_place(text: str, message: str) -> None:
    assert problems(text) == [(None, "(file)", message)]


def test_it_reads_an_unquoted_date_as_the_text_written() -> None:
    text = edit("{ebook: seven-fundamentals}", "{ebook: seven-fundamentals, day: 2024-02-30}")
    funnel = validate_text(text).funnel
    assert funnel is not None
    assert funnel.entry.where[1] == Condition("day", "eq", "2024-02-30")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_it_refuses_numbers_a_condition_cannot_use(value: str) -> None:
    text = edit("percent: {gte: 50}", f"percent: {{gte: {value}}}")
    number = {".nan": "nan", ".inf": "inf", "-.inf": "-inf"}[value]
    assert problems(text) == [
        (
            14,
            "stages[0].transitions[0].where.percent.gte",
            f"{number} is not a number a condition can use: write a plain number",
        )
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing yet\n"])
def test_it_reports_an_empty_file(text: str) -> None:
    assert problems(text) == [
        (
            None,
            "(file)",
            "the file is empty: a funnel needs at least key, name, topic, entry and stages",
        )
    ]


def test_it_refuses_a_file_that_aliases_itself_into_a_huge_tree() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    assert problems("\n".join(lines) + "\n") == [
        (None, "(file)", "the definition is too large or nests too deeply to be a funnel")
    ]


def test_it_validates_parsed_data_without_lines() -> None:
    data = {
        "key": "welcome",
        "name": "Welcome",
        "topic": "news",
        "entry": {"on": "signed_up"},
        "stages": [
            {
                "key": "hello",
                "emails": [{"template": "hello", "after": "2x"}],
                "transitions": [{"after": "1d", "to": "hello"}],
            }
        ],
    }
    result = validate_data(data)
    assert result.problems == (
        Problem(
            None,
            "stages[0].emails[0].after",
            "'2x' is not a duration: write a whole number and a unit, m, h, d or w, like 2d",
            "hello",
        ),
    )
    data["stages"][0]["emails"][0]["after"] = "1h"  # type: ignore[index]
    assert validate_data(data).ok
    assert validate_data([data]).problems == (
        Problem(None, "(file)", "a funnel is a set of fields (key: value), not a list"),
    )


def test_it_formats_a_problem_for_the_command_line() -> None:
    assert Problem(12, "stages[0].emails[1].after", "bad").format("f.yaml") == (
        "f.yaml:12: stages[0].emails[1].after: bad"
    )
    assert Problem(None, "(file)", "empty").format("f.yaml") == "f.yaml: (file): empty"


def test_it_is_ok_only_without_problems() -> None:
    assert ValidationResult(None, (Problem(1, "key", "bad"),)).ok is False
    assert validate_text(MINIMAL).ok is True


def test_it_refuses_names_and_keys_that_do_not_fit_the_database():
    from app.engine.definition import validate_text as check

    text = "key: k\nname: %s\ntopic: t\nentry: {on: e}\nexit: {on: x}\nstages: [{key: %s}]\n"
    long_name = check(text % ("n" * 201, "s")).problems
    assert [(p.line, p.field, p.message) for p in long_name] == [
        (2, "name", "is 201 characters long; at most 200 fit")
    ]
    long_key = check(text % ("n", "s" * 65)).problems
    assert [(p.line, p.field) for p in long_key] == [(6, "stages[0].key")]
    nul = check(text.replace("name: %s", 'name: "a\\0b"') % ("s",)).problems
    assert [(p.line, p.field) for p in nul] == [(2, "name")] and "control character" in nul[
        0
    ].message
