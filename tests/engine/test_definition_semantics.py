"""Definition meaning: problems a well-formed funnel can still have, named by stage and line."""

from __future__ import annotations

import pytest

from app.engine.definition import Problem, validate_text
from tests.engine.examples import EXAMPLE

TEMPLATES = {"ebook-welcome", "video1-invite", "quiz-invite", "dormant-nudge"}
NO_EXIT = "exit:  {on: form_submitted, where: {form: contact-us}, as: converted}\n"


def edit(old: str, new: str, text: str = EXAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def problems(text: str, templates: set[str] | None = None) -> list[Problem]:
    result = validate_text(text, templates=templates)
    assert result.funnel is None
    return list(result.problems)


def test_it_finds_nothing_wrong_with_the_example() -> None:
    result = validate_text(EXAMPLE, templates=TEMPLATES)
    assert result.problems == ()
    assert result.funnel is not None


def test_it_names_a_transition_to_a_missing_stage_and_the_likely_one() -> None:
    text = edit("to: watched_video1}", "to: watchd_video1}")
    assert problems(text) == [
        Problem(
            14,
            "stages[0].transitions[0].to",
            "stage 'read_ebook' moves to 'watchd_video1', which is not a stage of this funnel "
            "(did you mean 'watched_video1'?)",
            "read_ebook",
        ),
        # Nothing else leads to watched_video1, nor to took_quiz after it.
        Problem(
            16,
            "stages[1]",
            "no transition leads to stage 'watched_video1' from the first stage 'read_ebook', "
            "so no contact ever reaches it",
            "watched_video1",
        ),
        Problem(
            19,
            "stages[2]",
            "no transition leads to stage 'took_quiz' from the first stage 'read_ebook', "
            "so no contact ever reaches it",
            "took_quiz",
        ),
    ]


def test_it_names_a_duplicate_stage_key() -> None:
    text = EXAMPLE + "  - key: watched_video1\n    transitions: [{after: 1d, to: dormant}]\n"
    assert problems(text) == [
        Problem(
            23,
            "stages[4].key",
            "another stage above is already called 'watched_video1': stage keys must differ",
            "watched_video1",
        )
    ]


def test_it_names_an_unknown_template_when_templates_are_known() -> None:
    text = edit("{template: quiz-invite, after: 1h}", "{template: quiz-invte, after: 1h}")
    assert validate_text(text).ok  # without a list of templates there is nothing to check
    assert problems(text, TEMPLATES) == [
        Problem(
            17,
            "stages[1].emails[0].template",
            "stage 'watched_video1' sends the template 'quiz-invte', which does not exist "
            "(did you mean 'quiz-invite'?)",
            "watched_video1",
        )
    ]


def test_it_names_an_unreachable_stage() -> None:
    text = EXAMPLE + "  - key: orphan\n    transitions: [{after: 1d, to: dormant}]\n"
    assert problems(text) == [
        Problem(
            23,
            "stages[4]",
            "no transition leads to stage 'orphan' from the first stage 'read_ebook', "
            "so no contact ever reaches it",
            "orphan",
        )
    ]


def test_it_names_a_stage_with_no_way_out_when_there_is_no_exit() -> None:
    assert validate_text(EXAMPLE).ok  # dormant is a dead end, but the exit goal ends journeys
    assert problems(edit(NO_EXIT, "")) == [
        Problem(
            20,
            "stages[3]",
            "contacts who reach stage 'dormant' stay there forever: "
            "add a transition or an exit goal",
            "dormant",
        )
    ]


def test_it_accepts_a_stage_that_loops_to_itself_after_a_wait() -> None:
    text = EXAMPLE + "    transitions: [{after: 30d, to: dormant}]\n"
    assert validate_text(edit(NO_EXIT, "", text)).ok


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "stage", "reason"),
    [
        (
            "where: {ebook: seven-fundamentals}",
            "where: {ebook: {eq: a, ne: a}}",
            4,
            "entry.where",
            None,
            "'ebook' cannot both equal 'a' and not equal it",
        ),
        (
            "where: {form: contact-us}",
            "where: {form: contact-us, score: {gt: 10, lt: 5}}",
            5,
            "exit.where",
            None,
            "'score' cannot be both above 10 and below 5",
        ),
        (
            "percent: {gte: 50}",
            "percent: {gte: 50, lt: 10}",
            14,
            "stages[0].transitions[0].where",
            "read_ebook",
            "'percent' cannot be both at least 50 and below 10",
        ),
        (
            "[{on: quiz_taken, to: took_quiz}]",
            "[{on: quiz_taken, where: {score: {eq: 5, gt: 7}}, to: took_quiz}]",
            18,
            "stages[1].transitions[0].where",
            "watched_video1",
            "'score' cannot equal 5 and also be above 7",
        ),
        (
            "[{on: quiz_taken, to: took_quiz}]",
            "[{on: quiz_taken, where: {quiz: {in: []}}, to: took_quiz}]",
            18,
            "stages[1].transitions[0].where",
            "watched_video1",
            "'quiz' must be one of an empty list, so nothing can match",
        ),
    ],
)
def test_it_names_conditions_that_can_never_match(
    old: str, new: str, line: int, field: str, stage: str | None, reason: str
) -> None:
    assert problems(edit(old, new)) == [
        Problem(line, field, f"these conditions can never all hold: {reason}", stage)
    ]


def test_it_names_an_exit_in_a_list_by_its_index() -> None:
    text = edit(
        "exit:  {on: form_submitted, where: {form: contact-us}, as: converted}",
        "exit:\n  - {on: form_submitted}\n  - {on: bought, where: {plan: {eq: a, in: [b]}}}",
    )
    assert problems(text) == [
        Problem(
            7,
            "exit[1].where",
            "these conditions can never all hold: 'plan' must equal 'a', which is not one of ['b']",
        )
    ]


@pytest.mark.parametrize(
    ("caps", "field", "message"),
    [
        (
            "[{max: 5, per: 1d}, {max: 2, per: 7d}]",
            "caps[0]",
            "cap 5 per 1d can never be reached because 2 per 7d is stricter",
        ),
        (
            "[{max: 2, per: 7d}, {max: 2, per: 1d}]",
            "caps[1]",
            "cap 2 per 1d can never be reached because 2 per 7d is stricter",
        ),
        (
            "[{max: 1, per: 1d}, {max: 2, per: 24h}]",
            "caps[1]",
            "cap 2 per 24h contradicts cap 1 per 1d: keep one",
        ),
        (
            "[{max: 1, per: 1d}, {max: 1, per: 1d}]",
            "caps[1]",
            "cap 1 per 1d repeats cap 1 per 1d: keep one",
        ),
    ],
)
def test_it_names_caps_that_contradict(caps: str, field: str, message: str) -> None:
    text = edit("caps: [{max: 1, per: 1d}, {max: 3, per: 7d}]", f"caps: {caps}")
    assert problems(text) == [Problem(6, field, message)]


def test_it_accepts_caps_that_each_bind() -> None:
    text = edit(
        "caps: [{max: 1, per: 1d}, {max: 3, per: 7d}]",
        "caps: [{max: 1, per: 1d}, {max: 3, per: 1w}, {max: 8, per: 30d}]",
    )
    assert validate_text(text).ok


@pytest.mark.parametrize(
    ("after", "message"),
    [
        (
            "20d",
            "email 'video1-invite' after 20d comes after this stage's 14d timeout, "
            "so it is never sent",
        ),
        (
            "2w",
            "email 'video1-invite' after 2w is due at the same moment as this stage's 14d "
            "timeout, so it is never sent",
        ),
    ],
)
def test_it_names_an_email_due_after_the_stage_times_out(after: str, message: str) -> None:
    text = edit(
        "{template: video1-invite, after: 2d}", f"{{template: video1-invite, after: {after}}}"
    )
    assert problems(text) == [Problem(12, "stages[0].emails[1].after", message, "read_ebook")]


@pytest.mark.parametrize(
    ("after", "message"),
    [
        (
            "14d",
            "stage 'read_ebook' already moves contacts to 'dormant' after 14d, so this "
            "transition after 14d never happens",
        ),
        (
            "15d",
            "stage 'read_ebook' already moves contacts to 'dormant' after 14d, so this "
            "transition after 15d never happens",
        ),
    ],
)
def test_it_names_a_timeout_that_never_comes(after: str, message: str) -> None:
    text = edit(
        "      - {after: 14d, to: dormant}\n",
        f"      - {{after: 14d, to: dormant}}\n      - {{after: {after}, to: took_quiz}}\n",
    )
    assert problems(text) == [Problem(16, "stages[0].transitions[2].after", message, "read_ebook")]


def test_it_names_a_transition_shadowed_by_an_identical_earlier_one() -> None:
    text = edit(
        "[{on: quiz_taken, to: took_quiz}]",
        "[{on: quiz_taken, where: {a: 1, b: 2}, to: took_quiz},"
        " {on: quiz_taken, where: {b: 2, a: 1}, to: dormant}]",
    )
    assert problems(text) == [
        Problem(
            18,
            "stages[1].transitions[1]",
            "stage 'watched_video1' already moves contacts to 'took_quiz' on 'quiz_taken' "
            "with the same conditions, so this one never happens",
            "watched_video1",
        )
    ]


def test_it_checks_where_removed_stages_move() -> None:
    assert validate_text(EXAMPLE + "moved: {read_video: watched_video1}\n").ok
    text = EXAMPLE + "moved:\n  read_video: watched_vido1\n  dormant: took_quiz\n"
    assert problems(text) == [
        Problem(
            24,
            "moved.read_video",
            "contacts of the removed stage 'read_video' move to 'watched_vido1', which is not "
            "a stage of this funnel (did you mean 'watched_video1'?)",
        ),
        Problem(
            25,
            "moved.dormant",
            "'dormant' is still a stage of this funnel: only removed stages move",
            "dormant",
        ),
    ]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (
            'from: "17:00", to: "09:00"',
            "the window opens at 17:00 but closes at 09:00: 'from' must come before 'to'",
        ),
        (
            'from: "09:00", to: "09:00"',
            "the window opens at 09:00 but closes at 09:00: 'from' must come before 'to'",
        ),
        (
            'from: "09:00", to: "00:00"',
            "the window opens at 09:00 but closes at 00:00: 'from' must "
            "come before 'to' (write 24:00 for midnight)",
        ),
    ],
)
def test_it_names_a_send_window_that_never_opens(window: str, message: str) -> None:
    text = edit('from: "09:00", to: "17:00"', window)
    assert problems(text) == [Problem(7, "send_window.from", message)]


def test_it_accepts_a_send_window_until_midnight() -> None:
    assert validate_text(edit('from: "09:00", to: "17:00"', 'from: "00:00", to: "24:00"')).ok


def test_it_reports_every_problem_in_line_order() -> None:
    text = edit(
        "caps: [{max: 1, per: 1d}, {max: 3, per: 7d}]",
        "caps: [{max: 5, per: 1d}, {max: 2, per: 7d}]",
    )
    text = edit("to: took_quiz}]", "to: tooke_quiz}]", text)
    text = edit(
        "{template: dormant-nudge, after: 0m}",
        "{template: dormant-nudge, after: 0m}, {template: nope}",
        text,
    )
    assert [(p.line, p.field) for p in problems(text, TEMPLATES)] == [
        (6, "caps[0]"),
        (18, "stages[1].transitions[0].to"),
        (19, "stages[2]"),  # took_quiz is unreachable once the typo cuts it off
        (22, "stages[3].emails[1].template"),
    ]
