"""The checks behind ``definition``: the schema's errors in plain words, then the meaning.

Each check returns ``Finding``s: a path into the definition plus a message.
``definition.Source`` turns a path into a line and a field name, so these checks
stay the same for files and for already-parsed data.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, available_timezones

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from app.engine.conditions import describe, impossible, unseen_kinds
from app.engine.durations import format_duration, parse_day, parse_days, parse_duration, parse_time
from app.engine.model import Condition, FunnelDef, Stage

PathT = tuple[str | int, ...]  # a node's place in the definition: ("stages", 0, "key")

SCHEMA_FILE = Path(__file__).with_name("funnel.schema.json")


class Finding(NamedTuple):
    path: PathT
    message: str
    stage: str | None = None
    line: int | None = None  # only when the node is not in the data (a dropped duplicate key)


# --- Shape: the JSON schema --------------------------------------------------------------


@cache
def _validator() -> Draft202012Validator:
    return make_validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def make_validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` with the formats and plain words funnels use (segment
    definitions share them)."""
    return Draft202012Validator(schema, format_checker=_formats())


def schema() -> dict[str, Any]:
    """Return the JSON schema of a definition (for the API docs and the editor)."""
    return dict(_validator().schema)


def _formats() -> FormatChecker:
    checker = FormatChecker(formats=())
    # Each check raises ValueError with the marketer's message; the schema error carries it.
    parsers: dict[str, Callable[[str], object]] = {
        "duration": parse_duration,
        "positive-duration": _positive_duration,
        "day": parse_day,
        "days": parse_days,
        "start-time": parse_time,
        "end-time": lambda text: parse_time(text, end=True),
        "timezone": check_timezone,
        "timezone-or-contact": lambda text: text == "contact" or check_timezone(text),
    }
    for name, parse in parsers.items():
        checker.checks(name, raises=ValueError)(_only_text(parse))
    checker.checks("finite", raises=ValueError)(_finite)
    return checker


def _finite(instance: object) -> bool:
    # .nan never equals itself and neither it nor .inf survives being stored as JSON.
    if isinstance(instance, float) and not math.isfinite(instance):
        raise ValueError(f"{instance} is not a number a condition can use: write a plain number")
    return True


def _only_text(parse: Callable[[str], object]) -> Callable[[object], bool]:
    def check(instance: object) -> bool:
        if isinstance(instance, str):  # other types fail the schema's "type" instead
            parse(instance)
        return True

    return check


def _positive_duration(text: str) -> None:
    if not parse_duration(text):
        raise ValueError(f"'{text}' is no time at all: a cap counts emails over a window, like 1d")


def check_timezone(name: str) -> bool:
    """Return True for an IANA timezone name; raise ValueError (with a suggestion) otherwise."""
    try:
        ZoneInfo(name)
    except Exception:  # noqa: BLE001 - zoneinfo raises several kinds for bad names
        hint = _did_you_mean(name, _timezone_names())
        raise ValueError(
            f"'{name}' is not a timezone: use a name like Europe/Paris or America/New_York{hint}"
        ) from None
    return True


@cache
def _timezone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def schema_findings(
    data: Mapping[str, Any], validator: Draft202012Validator | None = None
) -> Iterator[Finding]:
    """Yield the definition's shape problems: missing, unknown or malformed fields.

    ``validator`` defaults to the funnel schema's.
    """
    for error in (validator or _validator()).iter_errors(data):
        yield from _translate(error)


def _translate(error: ValidationError) -> list[Finding]:
    """Put one schema error in the marketer's words, at the node it is about."""
    path: PathT = tuple(error.absolute_path)
    keyword = str(error.validator)
    if "propertyNames" in error.absolute_schema_path:
        path = (*path, str(error.instance))  # the error is about a key, not its parent
    if keyword == "required" and not _custom(error, keyword):
        return [
            _missing(path, name) for name in error.validator_value if name not in error.instance
        ]
    if keyword == "additionalProperties":
        return _unknown_fields(error, path)
    return [Finding(path, _message(error, keyword, path))]


def _missing(path: PathT, name: str) -> Finding:
    return Finding((*path, name), f"'{name}' is required but missing")


def _unknown_fields(error: ValidationError, path: PathT) -> list[Finding]:
    known = list(error.schema.get("properties", {}))
    template = _custom(error, "additionalProperties") or "unknown field '{name}'{hint}"
    return [
        Finding((*path, name), template.format(name=name, hint=_did_you_mean(name, known)))
        for name in error.instance
        if name not in known
    ]


def _message(error: ValidationError, keyword: str, path: PathT) -> str:
    instance = error.instance
    if keyword == "type" and instance is None:
        return "is empty: write a value here"
    if keyword == "format" and error.cause is not None:
        return str(error.cause)
    custom = _custom(error, keyword)
    if custom:
        key = path[-1] if path else ""
        return custom.format(key=key, value=describe(instance), kind=kind(instance))
    return _default_message(error, keyword)


def _custom(error: ValidationError, keyword: str) -> str | None:
    messages = error.schema.get("x-messages", {}) if isinstance(error.schema, dict) else {}
    return messages.get(keyword)


def _default_message(error: ValidationError, keyword: str) -> str:
    instance, expected = error.instance, error.validator_value
    if keyword == "type":
        wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in as_list(expected))
        found = kind(instance)
        if isinstance(instance, str):
            found += f" ({describe(instance)})"
        quote = "; put it in quotes" if expected == "string" else ""
        return f"should be {wanted}, but it is {found}{quote}"
    if keyword == "enum":
        return f"{describe(instance)} is not allowed here: use {' or '.join(map(str, expected))}"
    if keyword == "minimum":
        return f"must be at least {expected}, but it is {describe(instance)}"
    if keyword in ("minLength", "minItems", "minProperties"):
        return "should not be empty"
    if keyword == "maxLength":
        return f"is {len(instance)} characters long; at most {expected} fit"
    if keyword == "pattern" and isinstance(instance, str) and any(ord(c) < 32 for c in instance):
        return "contains a control character (such as a line break or \\0); write it on one line"
    return f"{describe(instance)} is not allowed here"


_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a set of fields (name: value)",
}


def kind(value: object) -> str:
    """Name the kind of a plain value the way a marketer would."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"true/false ({describe(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a set of fields" if isinstance(value, dict) else "something else"


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# --- Meaning: checks on a FunnelDef whose shape is right -------------------------------


def semantic_findings(
    funnel: FunnelDef,
    raw: Mapping[str, Any],
    templates: Collection[str] | None = None,
    *,
    attribute_kinds: Mapping[str, Collection[str]] | None = None,
) -> list[Finding]:
    """Return what makes a well-formed definition wrong: each finding names its stage.

    ``raw`` is the data the funnel was built from: its stage and list indexes match
    the funnel's, and it keeps durations as written (``14d`` rather than ``2w``).
    ``attribute_kinds`` (contact attribute -> kinds of value seen so far) lets
    ``contact.<attribute>`` conditions be checked against the contacts; None: don't.
    """
    texts = _Texts(raw)
    findings = [
        *_duplicate_stages(funnel),
        *_missing_targets(funnel),
        *_moved(funnel),
        *_unknown_templates(funnel, templates),
        *_unreachable(funnel),
        *_dead_ends(funnel),
        *_never_matching(funnel, raw),
        *_repeated_events(funnel),
        *_repeated_segments(funnel),
        *_timeouts(funnel, texts),
        *_caps(funnel, texts),
        *_send_window(raw),
        *_attribute_kinds(funnel, raw, attribute_kinds),
    ]
    return findings


class _Texts:
    """Durations in the marketer's own spelling, for messages."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def duration(self, path: PathT, value: timedelta) -> str:
        node: Any = self.raw
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return format_duration(value)
        return node.strip() if isinstance(node, str) else format_duration(value)


def _stage_keys(funnel: FunnelDef) -> set[str]:
    return {stage.key for stage in funnel.stages}


def _suggest(word: str, known: Iterable[str]) -> str:
    return _did_you_mean(word, sorted(known))


def _duplicate_stages(funnel: FunnelDef) -> Iterator[Finding]:
    seen: set[str] = set()
    for i, stage in enumerate(funnel.stages):
        if stage.key in seen:
            message = f"another stage above is already called '{stage.key}': stage keys must differ"
            yield Finding(("stages", i, "key"), message, stage.key)
        seen.add(stage.key)


def _missing_targets(funnel: FunnelDef) -> Iterator[Finding]:
    keys = _stage_keys(funnel)
    for i, stage in enumerate(funnel.stages):
        for j, transition in enumerate(stage.transitions):
            if transition.to not in keys:
                message = (
                    f"stage '{stage.key}' moves to '{transition.to}', which is not a stage "
                    f"of this funnel{_suggest(transition.to, keys)}"
                )
                yield Finding(("stages", i, "transitions", j, "to"), message, stage.key)


def _moved(funnel: FunnelDef) -> Iterator[Finding]:
    keys = _stage_keys(funnel)
    for removed, target in funnel.moved.items():
        if removed in keys:
            message = f"'{removed}' is still a stage of this funnel: only removed stages move"
            yield Finding(("moved", removed), message, removed)
        elif target not in keys:
            message = (
                f"contacts of the removed stage '{removed}' move to '{target}', which is not "
                f"a stage of this funnel{_suggest(target, keys)}"
            )
            yield Finding(("moved", removed), message)


def _unknown_templates(funnel: FunnelDef, templates: Collection[str] | None) -> Iterator[Finding]:
    if templates is None:
        return
    for i, stage in enumerate(funnel.stages):
        for j, email in enumerate(stage.emails):
            if email.template not in templates:
                message = (
                    f"stage '{stage.key}' sends the template '{email.template}', which does "
                    f"not exist{_suggest(email.template, templates)}"
                )
                yield Finding(("stages", i, "emails", j, "template"), message, stage.key)


def _unreachable(funnel: FunnelDef) -> Iterator[Finding]:
    first = funnel.first_stage.key
    reached, frontier = {first}, [first]
    while frontier:
        key = frontier.pop()
        for stage in (s for s in funnel.stages if s.key == key):
            for transition in stage.transitions:
                if transition.to not in reached:
                    reached.add(transition.to)
                    frontier.append(transition.to)
    for i, stage in enumerate(funnel.stages):
        if stage.key not in reached:
            message = (
                f"no transition leads to stage '{stage.key}' from the first stage "
                f"'{first}', so no contact ever reaches it"
            )
            yield Finding(("stages", i), message, stage.key)


def _dead_ends(funnel: FunnelDef) -> Iterator[Finding]:
    if funnel.exits:
        return
    for i, stage in enumerate(funnel.stages):
        if not stage.transitions:
            message = (
                f"contacts who reach stage '{stage.key}' stay there forever: "
                "add a transition or an exit goal"
            )
            yield Finding(("stages", i), message, stage.key)


def _wheres(
    funnel: FunnelDef, raw: Mapping[str, Any]
) -> Iterator[tuple[PathT, tuple[Condition, ...], str | None]]:
    """Every `where` of the funnel: its path, its conditions and its stage."""
    yield ("entry", "where"), funnel.entry.where, None
    exit_path: PathT = ("exit",) if isinstance(raw.get("exit"), Mapping) else ()
    for k, goal in enumerate(funnel.exits):
        yield (*(exit_path or ("exit", k)), "where"), goal.where, None
    for i, stage in enumerate(funnel.stages):
        for j, transition in enumerate(stage.transitions):
            if transition.on is not None:
                yield ("stages", i, "transitions", j, "where"), transition.on.where, stage.key


def _never_matching(funnel: FunnelDef, raw: Mapping[str, Any]) -> Iterator[Finding]:
    for path, conditions, stage in _wheres(funnel, raw):
        yield from _impossible(path, conditions, stage)


def _impossible(
    path: PathT, conditions: tuple[Condition, ...], stage: str | None = None
) -> Iterator[Finding]:
    for reason in impossible(conditions):
        yield Finding(path, f"these conditions can never all hold: {reason}", stage)


def _repeated_events(funnel: FunnelDef) -> Iterator[Finding]:
    """The first matching transition wins, so a copy of an earlier one is never taken."""
    for i, stage in enumerate(funnel.stages):
        earlier: dict[tuple[str, frozenset[Condition]], str] = {}
        for j, transition in enumerate(stage.transitions):
            if transition.on is None:
                continue
            trigger = (transition.on.on, frozenset(transition.on.where))
            if trigger in earlier:
                message = (
                    f"stage '{stage.key}' already moves contacts to '{earlier[trigger]}' on "
                    f"'{transition.on.on}' with the same conditions, so this one never happens"
                )
                yield Finding(("stages", i, "transitions", j), message, stage.key)
            earlier.setdefault(trigger, transition.to)


def _repeated_segments(funnel: FunnelDef) -> Iterator[Finding]:
    for i, stage in enumerate(funnel.stages):
        earlier: dict[str, str] = {}
        for j, transition in enumerate(stage.transitions):
            if transition.segment is None:
                continue
            if transition.segment in earlier:
                message = (
                    f"stage '{stage.key}' already moves contacts to "
                    f"'{earlier[transition.segment]}' when they join segment "
                    f"'{transition.segment}', so this one never happens"
                )
                yield Finding(("stages", i, "transitions", j), message, stage.key)
            earlier.setdefault(transition.segment, transition.to)


def _attribute_kinds(
    funnel: FunnelDef, raw: Mapping[str, Any], kinds: Mapping[str, Collection[str]] | None
) -> Iterator[Finding]:
    for path, conditions, stage in _wheres(funnel, raw) if kinds is not None else ():
        for condition, reason in unseen_kinds(conditions, kinds or {}):
            yield Finding((*path, condition.path), f"{reason}, so it never matches", stage)


def _timeouts(funnel: FunnelDef, texts: _Texts) -> Iterator[Finding]:
    for i, stage in enumerate(funnel.stages):
        timed = [(t.after, j, t.to) for j, t in enumerate(stage.transitions) if t.after is not None]
        if not timed:
            continue
        # The earliest timeout moves every contact on; nothing later in the stage happens.
        timeout, first_j, first_to = min(timed)
        limit = texts.duration(("stages", i, "transitions", first_j, "after"), timeout)
        yield from _late_emails(i, stage, timeout, limit, texts)
        for after, j, _to in timed:
            if j == first_j:
                continue
            path: PathT = ("stages", i, "transitions", j, "after")
            message = (
                f"stage '{stage.key}' already moves contacts to '{first_to}' after {limit}, "
                f"so this transition after {texts.duration(path, after)} never happens"
            )
            yield Finding(path, message, stage.key)


def _late_emails(
    i: int, stage: Stage, timeout: timedelta, limit: str, texts: _Texts
) -> Iterator[Finding]:
    for j, email in enumerate(stage.emails):
        if email.after < timeout:
            continue
        path: PathT = ("stages", i, "emails", j, "after")
        when = "comes after" if email.after > timeout else "is due at the same moment as"
        message = (
            f"email '{email.template}' after {texts.duration(path, email.after)} {when} this "
            f"stage's {limit} timeout, so it is never sent"
        )
        yield Finding(path, message, stage.key)


def _caps(funnel: FunnelDef, texts: _Texts) -> Iterator[Finding]:
    def label(index: int) -> str:
        cap = funnel.caps[index]
        return f"{cap.max} per {texts.duration(('caps', index, 'per'), cap.per)}"

    for j, cap in enumerate(funnel.caps):
        for i, other in enumerate(funnel.caps):
            if i == j:
                continue
            if other.per == cap.per and i < j:
                same = "repeats" if other.max == cap.max else "contradicts"
                yield Finding(("caps", j), f"cap {label(j)} {same} cap {label(i)}: keep one")
                break
            if other.per > cap.per and other.max <= cap.max:
                message = f"cap {label(j)} can never be reached because {label(i)} is stricter"
                yield Finding(("caps", j), message)
                break


def _send_window(raw: Mapping[str, Any]) -> Iterator[Finding]:
    window = raw.get("send_window")
    if not isinstance(window, Mapping):
        return
    opens, closes = str(window.get("from", "00:00")), str(window.get("to", "24:00"))
    start, end = parse_time(opens), parse_time(closes, end=True)
    start_minutes = start.hour * 60 + start.minute
    end_minutes = 24 * 60 if closes.strip() == "24:00" else end.hour * 60 + end.minute
    if start_minutes >= end_minutes:
        hint = " (write 24:00 for midnight)" if end_minutes == 0 else ""
        message = (
            f"the window opens at {opens} but closes at {closes}: "
            f"'from' must come before 'to'{hint}"
        )
        yield Finding(("send_window", "from"), message)
