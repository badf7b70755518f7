"""Parse and validate segment definitions (YAML or JSON) into a ``SegmentDef``.

The same three layers as funnels (``definition``), reported the same way, as
``file:line: field: message``: the YAML itself, the shape (``segment.schema.json``
plus the funnel schema's shared parts), then the meaning: conditions that can never
hold, references to segments that do not exist or that lead back to the segment
itself, funnels and stages that do not exist, and ``contact.<attribute>`` tests
that no value seen so far could pass.
"""

from __future__ import annotations

import difflib
import json
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from app.engine.checks import SCHEMA_FILE, Finding, PathT, make_validator, schema_findings
from app.engine.conditions import impossible, parse_where, unseen_kinds
from app.engine.definition import Problem, Source, load_source
from app.engine.durations import parse_duration
from app.engine.segments import (
    Abandoned,
    All,
    AnyOf,
    Attributes,
    Consent,
    Converted,
    Count,
    EventKey,
    InStage,
    Member,
    Node,
    Not,
    Seen,
    SegmentDef,
    Total,
    Window,
)

SEGMENT_SCHEMA = Path(__file__).with_name("segment.schema.json")
# A condition is the kind its first key (in this order) names.
KINDS = (
    "all", "any", "not", "attribute", "contact", "performed", "not_performed", "first_seen",
    "last_seen", "count", "sum", "consent", "in_stage", "converted_in", "segment",
)  # fmt: skip
SHARED = ("slug", "duration", "where", "where_value", "operators", "scalar", "number")
REQUIRED = "key, name and match"


@dataclass(frozen=True)
class SegmentResult:
    segment: SegmentDef | None  # None whenever there are problems
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


# --- Shape -------------------------------------------------------------------------------


@cache
def _validator() -> Draft202012Validator:
    return make_validator(schema())


def schema() -> dict[str, Any]:
    """The segment schema as one document: the funnel schema's shared $defs merged in
    and the condition dispatch built (one if/then/else branch per kind)."""
    own = json.loads(SEGMENT_SCHEMA.read_text(encoding="utf-8"))
    funnel_defs = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"]
    defs = {**{name: funnel_defs[name] for name in SHARED}, **own["$defs"]}
    for kind in KINDS:
        messages = defs[f"kind_{kind}"].setdefault("x-messages", {})
        messages.setdefault(
            "additionalProperties", f"'{{name}}' is not a field of a '{kind}' condition{{hint}}"
        )
    defs["no_kind"] = {
        "additionalProperties": False,
        "properties": {kind: {} for kind in KINDS},
        "x-messages": {
            "additionalProperties": "'{name}' is not a kind of condition: start it with "
            + ", ".join(KINDS[:-1])
            + f" or {KINDS[-1]}{{hint}}"
        },
    }
    branch: dict[str, Any] = {"$ref": "#/$defs/no_kind"}
    for kind in reversed(KINDS):
        test = {"type": "object", "required": [kind]}
        branch = {"if": test, "then": {"$ref": f"#/$defs/kind_{kind}"}, "else": branch}
    defs["condition"] = {
        "type": "object",
        "minProperties": 1,
        **branch,
        "x-messages": {
            "type": "should be a condition, like {{performed: add_to_cart}}, but it is {kind}",
            "minProperties": "write a condition here, like {{segment: high-value}}",
        },
    }
    return {**own, "$defs": defs}


# --- Validation --------------------------------------------------------------------------


def validate_text(
    text: str,
    *,
    known: Mapping[str, Collection[str]] | None = None,
    funnels: Mapping[str, Collection[str]] | None = None,
    attribute_kinds: Mapping[str, Collection[str]] | None = None,
) -> SegmentResult:
    """Validate a YAML or JSON segment definition.

    ``known`` maps the other segments' keys to the keys they refer to (None: don't
    check references); ``funnels`` maps funnel keys to their stage keys (None: don't
    check them); ``attribute_kinds`` the kinds of value seen per contact attribute.
    """
    loaded = load_source(text, "segment", REQUIRED)
    if isinstance(loaded, Problem):
        return SegmentResult(None, (loaded,))
    source, early = loaded
    shape = early + list(schema_findings(source.data, _validator()))
    if shape:
        return SegmentResult(None, source.problems(shape))
    segment = build(source.data)
    meaning = semantic_findings(segment, known, funnels, attribute_kinds)
    if meaning:
        return SegmentResult(None, source.problems(meaning))
    return SegmentResult(segment, ())


def segment_from_dict(data: Mapping[str, Any]) -> SegmentDef:
    """The SegmentDef of a stored definition (its shape only is checked: it was
    validated in full when saved); ValueError if the shape is wrong."""
    source = Source.from_document(data)
    shape = list(schema_findings(source.data, _validator()))
    if shape:
        raise ValueError("; ".join(f"{p.field}: {p.message}" for p in source.problems(shape)))
    return build(source.data)


# --- Building -----------------------------------------------------------------------------


def build(data: Mapping[str, Any]) -> SegmentDef:
    """The SegmentDef of a definition that passed the schema."""
    return SegmentDef(
        data["key"], data["name"], node(data["match"], ("match",)), data.get("description", "")
    )


def node(raw: Mapping[str, Any], path: PathT) -> Node:
    kind = next(k for k in KINDS if k in raw)
    if kind in ("all", "any"):
        parts = tuple(node(part, (*path, kind, i)) for i, part in enumerate(raw[kind]))
        return All(parts, path) if kind == "all" else AnyOf(parts, path)
    if kind == "not":
        return Not(node(raw["not"], (*path, "not")), path)
    if kind in ("first_seen", "last_seen"):
        when = {k: parse_duration(v) for k, v in raw[kind].items()}
        return Seen(kind.removesuffix("_seen"), when.get("within"), when.get("before"), path)
    return _LEAF_BUILDERS[kind](raw, path)


def _attribute(raw: Mapping[str, Any], path: PathT) -> Node:
    tests = {op: value for op, value in raw.items() if op != "attribute"}
    return Attributes(parse_where({f"contact.{raw['attribute']}": tests}), path)


def _contact(raw: Mapping[str, Any], path: PathT) -> Node:
    return Attributes(parse_where({f"contact.{k}": v for k, v in raw["contact"].items()}), path)


def _key(raw: Mapping[str, Any], kind: str) -> EventKey:
    return EventKey(raw[kind], parse_where(raw.get("where", {})))


def _within(raw: Mapping[str, Any], name: str = "within") -> timedelta | None:
    return parse_duration(raw[name]) if name in raw else None


def _performed(raw: Mapping[str, Any], path: PathT) -> Node:
    key = _key(raw, "performed")
    if "not_followed_by" in raw:
        wait = parse_duration(raw["for"])
        return Abandoned(key, raw["not_followed_by"], wait, _within(raw), path)
    low = raw.get("at_least", 0 if "at_most" in raw else 1)
    return Count(Window(key, _within(raw)), low, raw.get("at_most"), path)


def _not_performed(raw: Mapping[str, Any], path: PathT) -> Node:
    return Count(Window(_key(raw, "not_performed"), _within(raw, "since")), 0, 0, path)


def _count(raw: Mapping[str, Any], path: PathT) -> Node:
    low, high = 0, None
    for op, n in raw.items():
        if op in ("eq", "gte", "gt"):
            low = max(low, n + 1 if op == "gt" else n)
        if op in ("eq", "lte", "lt"):
            bound = n - 1 if op == "lt" else n
            high = bound if high is None else min(high, bound)
    return Count(Window(_key(raw, "count"), _within(raw)), low, high, path)


def _sum(raw: Mapping[str, Any], path: PathT) -> Node:
    type_, _, prop = raw["sum"].partition(".")
    window = Window(EventKey(type_, parse_where(raw.get("where", {}))), _within(raw), prop)
    tests = {op: value for op, value in raw.items() if op in ("eq", "gt", "gte", "lt", "lte")}
    return Total(window, parse_where({"sum": tests}), path)


def _consent(raw: Mapping[str, Any], path: PathT) -> Node:
    spec = raw["consent"]
    status = spec.get("status", ())
    statuses = tuple(status) if isinstance(status, list) else ((status,) if status else ())
    return Consent(statuses, spec.get("topic"), spec.get("is", "subscribed"), path)


def _in_stage(raw: Mapping[str, Any], path: PathT) -> Node:
    return InStage(raw["in_stage"]["funnel"], raw["in_stage"].get("stage"), path)


def _converted_in(raw: Mapping[str, Any], path: PathT) -> Node:
    return Converted(raw["converted_in"], path)


def _segment(raw: Mapping[str, Any], path: PathT) -> Node:
    return Member(raw["segment"], path)


_LEAF_BUILDERS: dict[str, Callable[[Mapping[str, Any], PathT], Node]] = {
    "attribute": _attribute,
    "contact": _contact,
    "performed": _performed,
    "not_performed": _not_performed,
    "count": _count,
    "sum": _sum,
    "consent": _consent,
    "in_stage": _in_stage,
    "converted_in": _converted_in,
    "segment": _segment,
}


# --- Meaning ----------------------------------------------------------------------------


def semantic_findings(
    segment: SegmentDef,
    known: Mapping[str, Collection[str]] | None = None,
    funnels: Mapping[str, Collection[str]] | None = None,
    attribute_kinds: Mapping[str, Collection[str]] | None = None,
) -> list[Finding]:
    """What makes a well-formed segment wrong, each at the condition it is about."""
    nodes = segment.nodes()
    findings = [finding for n in nodes for finding in _never(n)]
    if known is not None:
        findings += _references(segment, known)
    if funnels is not None:
        findings += _funnels(nodes, funnels)
    if attribute_kinds is not None:
        findings += _attribute_kinds(nodes, attribute_kinds)
    return findings


def _never(n: Node) -> Iterator[Finding]:
    """Conditions no contact can ever meet."""
    if isinstance(n, Count | Total | Abandoned):
        key = n.window.key if isinstance(n, Count | Total) else n.first
        yield from _impossible((*n.path, "where"), key.where)
    if isinstance(n, Attributes | Total):
        yield from _impossible(n.path, n.conditions)
    if isinstance(n, Count):
        yield from _count_findings(n)
    if isinstance(n, Abandoned) and n.within is not None and n.within <= n.wait:
        yield Finding(
            (*n.path, "within"),
            "'within' must be longer than 'for': the wait has to end before the "
            "event is too old to count, or no one is ever a member",
        )
    if isinstance(n, Seen) and n.within is not None and n.before is not None:
        yield from _seen_findings(n.path, n.within, n.before)


def _seen_findings(path: PathT, within: timedelta, before: timedelta) -> Iterator[Finding]:
    if within <= before:
        yield Finding(path, "'within' must be longer than 'before', or no one matches")


def _count_findings(n: Count) -> Iterator[Finding]:
    field = "since" if n.high == 0 and n.low == 0 else "within"
    if n.window.within is not None and not n.window.within:
        yield Finding((*n.path, field), "is no time at all: write a window, like 24h or 60d")
    if n.high is not None and n.low > n.high:
        yield Finding(
            n.path,
            f"no count is at least {n.low} and also at most {n.high}, so no one matches",
        )


def _impossible(path: PathT, conditions: Iterable[Any]) -> Iterator[Finding]:
    for reason in impossible(conditions):
        yield Finding(path, f"these conditions can never all hold: {reason}")


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _references(segment: SegmentDef, known: Mapping[str, Collection[str]]) -> Iterator[Finding]:
    graph = {key: set(refs) for key, refs in known.items()}
    graph[segment.key] = segment.refs()
    for n in segment.nodes():
        if not isinstance(n, Member):
            continue
        path = (*n.path, "segment")
        if n.segment not in graph:
            others = set(graph) - {segment.key}
            message = f"there is no segment '{n.segment}'{_suggest(n.segment, others)}"
            yield Finding(path, message)
            continue
        loop = _route(graph, n.segment, segment.key)
        if loop is not None:
            circle = " -> ".join([segment.key, *loop])
            yield Finding(path, f"segments cannot refer to each other in a circle: {circle}")


def _route(graph: Mapping[str, Collection[str]], start: str, goal: str) -> list[str] | None:
    """The keys from ``start`` to ``goal`` following references, or None."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        key = queue.popleft()
        if key == goal:
            route: list[str] = []
            step: str | None = key
            while step is not None:
                route.append(step)
                step = came_from[step]
            return route[::-1]
        for ref in sorted(graph.get(key, ())):
            if ref not in came_from:
                came_from[ref] = key
                queue.append(ref)
    return None


def _funnels(nodes: Iterable[Node], funnels: Mapping[str, Collection[str]]) -> Iterator[Finding]:
    for n in nodes:
        if not isinstance(n, InStage | Converted):
            continue
        where: PathT = (
            (*n.path, "in_stage", "funnel") if isinstance(n, InStage) else (*n.path, "converted_in")
        )
        if n.funnel not in funnels:
            yield Finding(where, f"there is no funnel '{n.funnel}'{_suggest(n.funnel, funnels)}")
        elif isinstance(n, InStage) and n.stage is not None and n.stage not in funnels[n.funnel]:
            hint = _suggest(n.stage, funnels[n.funnel])
            message = f"funnel '{n.funnel}' has no stage '{n.stage}'{hint}"
            yield Finding((*n.path, "in_stage", "stage"), message)


def _attribute_kinds(
    nodes: Iterable[Node], kinds: Mapping[str, Collection[str]]
) -> Iterator[Finding]:
    for n in nodes:
        if isinstance(n, Attributes):
            for _, reason in unseen_kinds(n.conditions, kinds):
                yield Finding(n.path, f"{reason}, so no one matches")
