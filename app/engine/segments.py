"""Segments: who a contact is, what they did and what they are worth, as a condition
tree evaluated against one contact's facts at one moment.

Pure: the service gathers a contact's ``Facts`` (attribute values, consent, event
tallies, funnel journeys) as of a time ``at``; ``evaluate_all`` answers, for every
segment, whether the contact is a member *and* the earliest moment the answer can
change by time alone (an event ageing out of a window, a wait running out). That
moment is what lets membership stay current without rescanning anyone: a contact is
looked at again only when an event touches them or their moment comes.

``segment_checks`` parses and validates definitions into the ``SegmentDef`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.engine.conditions import is_number, matches, value_at
from app.engine.model import Condition

PathT = tuple[str | int, ...]

# Consent words: a topic the contact never chose is "none".
NO_TOPIC = "none"
CONVERTED = "converted"


# --- Facts: what the service reads about one contact ---------------------------------


@dataclass(frozen=True)
class EventKey:
    """Events of one type whose properties meet ``where`` (all of it)."""

    type: str
    where: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Window:
    """A tally to keep: matching events within ``within`` before ``at`` (None: ever),
    counted, and ``prop`` summed over them when given."""

    key: EventKey
    within: timedelta | None = None
    prop: str | None = None


@dataclass(frozen=True)
class Tally:
    """The value of a Window: how many, the sum of ``prop``, the oldest and newest."""

    count: int = 0
    total: float = 0.0
    oldest: datetime | None = None
    newest: datetime | None = None


@dataclass(frozen=True)
class Journey:
    """One enrollment of the contact, as funnel conditions see it."""

    status: str  # active | exited
    stage: str
    label: str | None = None


@dataclass(frozen=True)
class Facts:
    """Everything segments may ask about one contact, as of one moment."""

    contact: Mapping[str, Any]  # attributes plus the standard fields (render_view)
    created_at: datetime
    status: str = "active"
    topics: Mapping[str, str] = field(default_factory=dict)
    tallies: Mapping[Window, Tally] = field(default_factory=dict)
    last_seen: datetime | None = None  # the newest event of any type
    journeys: Mapping[str, tuple[Journey, ...]] = field(default_factory=dict)  # by funnel key


# --- The condition tree ----------------------------------------------------------------


@dataclass(frozen=True)
class All:
    parts: tuple[Node, ...]
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Node, ...]
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Not:
    part: Node
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Attributes:
    """Contact attributes; condition paths start with ``contact.``."""

    conditions: tuple[Condition, ...]
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Count:
    """``low <= count <= high`` for a window (performed, not_performed, count)."""

    window: Window
    low: int = 0
    high: int | None = None
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Total:
    """The sum of a property over a window, compared (``path`` of conditions: ``sum``)."""

    window: Window
    conditions: tuple[Condition, ...]
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Abandoned:
    """The last ``first`` event is at least ``wait`` old (and, with ``within``, younger
    than that), and no ``then`` event came after it: added to cart, no purchase."""

    first: EventKey
    then: str
    wait: timedelta
    within: timedelta | None = None
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Seen:
    """When the contact was first known (``first``) or last did anything (``last``)."""

    which: str  # first | last
    within: timedelta | None = None
    before: timedelta | None = None
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Consent:
    statuses: tuple[str, ...] = ()  # empty: any status
    topic: str | None = None
    state: str = "subscribed"
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class InStage:
    funnel: str
    stage: str | None = None  # None: any stage, i.e. active in the funnel
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Converted:
    funnel: str
    path: PathT = field(default=(), compare=False)


@dataclass(frozen=True)
class Member:
    segment: str
    path: PathT = field(default=(), compare=False)


Node = (
    All
    | AnyOf
    | Not
    | Attributes
    | Count
    | Total
    | Abandoned
    | Seen
    | Consent
    | InStage
    | Converted
    | Member
)


@dataclass(frozen=True)
class SegmentDef:
    key: str
    name: str
    match: Node
    description: str = ""

    def nodes(self) -> list[Node]:
        return list(walk(self.match))

    def refs(self) -> set[str]:
        """The segments this one is built on."""
        return {n.segment for n in self.nodes() if isinstance(n, Member)}

    def windows(self) -> set[Window]:
        return set(windows_of(self.nodes()))


def walk(node: Node) -> Iterable[Node]:
    """Every node of a tree, parents before children."""
    yield node
    if isinstance(node, All | AnyOf):
        for part in node.parts:
            yield from walk(part)
    elif isinstance(node, Not):
        yield from walk(node.part)


def windows_of(nodes: Iterable[Node]) -> Iterable[Window]:
    for node in nodes:
        if isinstance(node, Count | Total):
            yield node.window
        elif isinstance(node, Abandoned):
            yield Window(node.first)
            yield Window(EventKey(node.then))


@dataclass(frozen=True)
class Needs:
    """What the service must read to evaluate a set of segments."""

    windows: frozenset[Window]
    last_seen: bool
    journeys: bool
    topics: bool

    @classmethod
    def of(cls, segments: Iterable[SegmentDef]) -> Needs:
        nodes = [n for segment in segments for n in segment.nodes()]
        return cls(
            frozenset(windows_of(nodes)),
            any(isinstance(n, Seen) and n.which == "last" for n in nodes),
            any(isinstance(n, InStage | Converted) for n in nodes),
            any(isinstance(n, Consent) and n.topic is not None for n in nodes),
        )

    def moved_by(self, event_type: str) -> bool:
        """Can an event of this type change any answer? Any event can when segments
        read the last time seen or funnel journeys (the event may move a funnel)."""
        if self.last_seen or self.journeys:
            return True
        return any(w.key.type == event_type for w in self.windows)


# --- Tallies from events (the service's path for windows with conditions) -------------


def tally(
    events: Iterable[tuple[str, datetime, Mapping[str, Any]]],
    window: Window,
    at: datetime,
    contact: Mapping[str, Any] | None = None,
) -> Tally:
    """Tally ``(type, occurred_at, properties)`` events for ``window`` as of ``at``:
    those that happened in ``(at - within, at]`` (or ever, up to ``at``)."""
    start = at - window.within if window.within is not None else None
    count, total, times = 0, 0.0, []
    for type_, occurred, properties in events:
        if type_ != window.key.type or occurred > at or (start and occurred <= start):
            continue
        if not matches(window.key.where, properties, contact):
            continue
        count += 1
        times.append(occurred)
        amount: Any = value_at(properties, window.prop) if window.prop else None
        total += float(amount) if is_number(amount) else 0.0
    return Tally(count, total, min(times, default=None), max(times, default=None))


# --- Evaluation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Member or not, and the earliest moment that can change without a new event
    (None: only an event, an attribute or a funnel move can change it)."""

    member: bool
    next_check: datetime | None = None


def evaluate_all(
    segments: Sequence[SegmentDef], facts: Facts, at: datetime, *, ordered: bool = False
) -> dict[str, Verdict]:
    """Every segment's verdict for one contact as of ``at``; segments built on others
    are evaluated after them (``in_order``; ``ordered``: they already are)."""
    members: dict[str, bool] = {}
    verdicts: dict[str, Verdict] = {}
    for segment in segments if ordered else in_order(segments):
        verdict = evaluate(segment.match, facts, at, members)
        members[segment.key] = verdict.member
        verdicts[segment.key] = verdict
    return verdicts


def next_check(verdicts: Iterable[Verdict]) -> datetime | None:
    return min((v.next_check for v in verdicts if v.next_check), default=None)


def in_order(segments: Sequence[SegmentDef]) -> list[SegmentDef]:
    """Segments with the ones they refer to first (by key where free to choose).
    Validation refuses cycles; were one to slip in, its members read as False."""
    by_key = {s.key: s for s in segments}
    done: dict[str, SegmentDef] = {}

    def visit(segment: SegmentDef, trail: frozenset[str]) -> None:
        for ref in sorted(segment.refs()):
            if ref in by_key and ref not in done and ref not in trail:
                visit(by_key[ref], trail | {segment.key})
        done.setdefault(segment.key, segment)

    for segment in sorted(segments, key=lambda s: s.key):
        visit(segment, frozenset())
    return list(done.values())


def evaluate(node: Node, facts: Facts, at: datetime, members: Mapping[str, bool]) -> Verdict:
    """One node's verdict; a combination changes no earlier than its parts do."""
    if isinstance(node, All | AnyOf):
        parts = [evaluate(p, facts, at, members) for p in node.parts]
        combine = all if isinstance(node, All) else any
        return Verdict(combine(p.member for p in parts), next_check(parts))
    if isinstance(node, Not):
        inner = evaluate(node.part, facts, at, members)
        return Verdict(not inner.member, inner.next_check)
    if isinstance(node, Member):
        return Verdict(members.get(node.segment, False))
    return _LEAVES[type(node)](node, facts, at)


def _attributes(node: Any, facts: Facts, at: datetime) -> Verdict:
    return Verdict(matches(node.conditions, {}, facts.contact))


def _count(node: Any, facts: Facts, at: datetime) -> Verdict:
    """Only a window can change a count by time, and only by events leaving it: the
    oldest goes first, so nothing changes before it leaves (the newest, when the
    count must fall to zero)."""
    found = facts.tallies.get(node.window, Tally())
    low, high, within = node.low, node.high, node.window.within
    member = found.count >= low and (high is None or found.count <= high)
    if within is None or not found.count or found.oldest is None or found.newest is None:
        return Verdict(member)
    if found.count < low or (member and low == 0):
        return Verdict(member)  # fewer events cannot help; or nothing can break it
    if high == 0 and not member:
        return Verdict(member, found.newest + within)
    return Verdict(member, found.oldest + within)


def _total(node: Any, facts: Facts, at: datetime) -> Verdict:
    found = facts.tallies.get(node.window, Tally())
    member = matches(node.conditions, {"sum": found.total})
    within = node.window.within
    if within is None or found.oldest is None:
        return Verdict(member)
    return Verdict(member, found.oldest + within)


def _abandoned(node: Any, facts: Facts, at: datetime) -> Verdict:
    last = facts.tallies.get(Window(node.first), Tally()).newest
    then = facts.tallies.get(Window(EventKey(node.then)), Tally()).newest
    if last is None or (then is not None and then >= last):
        return Verdict(False)
    ready = last + node.wait
    if at < ready:
        return Verdict(False, ready)
    expires = last + node.within if node.within is not None else None
    if expires is not None and at >= expires:
        return Verdict(False)
    return Verdict(True, expires)


def _seen(node: Any, facts: Facts, at: datetime) -> Verdict:
    """Within D: until the moment + D; before D: from the moment + D. A contact who
    never did anything was last seen when they became known."""
    moment = facts.created_at
    if node.which == "last":
        moment = max(facts.last_seen or moment, moment)
    edges = []
    member = True
    if node.within is not None:
        member = member and at < moment + node.within
        edges.append(moment + node.within)
    if node.before is not None:
        member = member and at >= moment + node.before
        edges.append(moment + node.before)
    return Verdict(member, min((e for e in edges if e > at), default=None))


def _consent(node: Any, facts: Facts, at: datetime) -> Verdict:
    member = not node.statuses or facts.status in node.statuses
    if node.topic is not None:
        member = member and facts.topics.get(node.topic, NO_TOPIC) == node.state
    return Verdict(member)


def _in_stage(node: Any, facts: Facts, at: datetime) -> Verdict:
    return Verdict(
        any(
            j.status == "active" and node.stage in (None, j.stage)
            for j in facts.journeys.get(node.funnel, ())
        )
    )


def _converted(node: Any, facts: Facts, at: datetime) -> Verdict:
    journeys = facts.journeys.get(node.funnel, ())
    return Verdict(any(j.status == "exited" and j.label == CONVERTED for j in journeys))


_LEAVES: dict[type, Callable[[Any, Facts, datetime], Verdict]] = {
    Attributes: _attributes,
    Count: _count,
    Total: _total,
    Abandoned: _abandoned,
    Seen: _seen,
    Consent: _consent,
    InStage: _in_stage,
    Converted: _converted,
}
