"""Segment definitions: validate against what the database knows, save versions,
publish, load files, export; the live set; and what the API and CLI show about a
segment (its size, recent joins and leaves, its members).

Membership itself (evaluation, joins and leaves, the tick's refresh) lives in
`app.services.segment_membership`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Select,
    String,
    case,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import UTCDateTime
from app.engine.conditions import attribute_kind
from app.engine.definition import Problem, load_source
from app.engine.segment_checks import segment_from_dict, validate_text
from app.engine.segments import Needs, SegmentDef, in_order
from app.models import (
    Contact,
    Funnel,
    Segment,
    SegmentChange,
    SegmentCheck,
    SegmentMember,
    SegmentVersion,
)
from app.services.cache import Definitions, PerDatabase
from app.services.funnels import definition_of, latest_version

# Attribute kinds are judged on the newest contacts: enough to know what a field
# holds, cheap on any table size.
ATTRIBUTE_SAMPLE = 1000
PUBLISH = "publish"

# Versions are immutable: parsed definitions are cached by version id, per database
# (as funnel definitions are).
_DEFINITIONS = Definitions(SegmentVersion, segment_from_dict)
LiveKey = tuple[tuple[int, int], ...]  # (segment id, live version id) of every live segment
_LIVE: PerDatabase[LiveKey, LiveSet] = PerDatabase()


class SegmentInvalid(ValueError):
    """The definition has problems; `problems` lists them with lines and fields."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        super().__init__("; ".join(p.format("segment") for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class LiveSegment:
    segment_id: int
    version_id: int
    definition: SegmentDef


@dataclass(frozen=True)
class LiveSet:
    """The published segments, in evaluation order, and what evaluating them needs."""

    segments: tuple[LiveSegment, ...]
    needs: Needs

    @property
    def definitions(self) -> list[SegmentDef]:
        return [s.definition for s in self.segments]


def definition_of_version(session: Session, version: SegmentVersion) -> SegmentDef:
    return _DEFINITIONS.of(session, version)


def live_segments(session: Session) -> LiveSet:
    """Every published segment, those others build on first.

    Read on every event, so it reads two columns: the set for the same versions is
    built once (definitions, order, needs) and kept, as definitions are.
    """
    query = select(Segment.id, Segment.live_version_id).where(Segment.live_version_id.is_not(None))
    query = query.order_by(Segment.id)
    live = tuple((sid, vid) for sid, vid in session.execute(query) if vid is not None)
    cache = _LIVE.of(session)
    found = cache.get(live)
    if found is None:
        found = cache[live] = _live_set(session, live)
    return found


def _live_set(session: Session, live: LiveKey) -> LiveSet:
    segments = []
    for segment_id, version_id in live:
        definition = _DEFINITIONS.of_id(session, version_id)
        segments.append(LiveSegment(segment_id, version_id, definition))
    order = {d.key: i for i, d in enumerate(in_order([s.definition for s in segments]))}
    segments.sort(key=lambda s: order[s.definition.key])
    return LiveSet(tuple(segments), Needs.of(s.definition for s in segments))


# --- Validation against the database --------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What validation checks references against: segments (key -> the keys they
    refer to), funnels (key -> stage keys), contact attribute kinds seen so far."""

    known: dict[str, frozenset[str]]
    funnels: dict[str, frozenset[str]]
    attribute_kinds: dict[str, set[str]]


def context(session: Session) -> Context:
    known: dict[str, frozenset[str]] = {}
    for segment in session.scalars(select(Segment)):
        version = segment.live_version or _latest(session, segment)
        if version is not None:
            known[segment.key] = frozenset(definition_of_version(session, version).refs())
    funnels: dict[str, frozenset[str]] = {}
    for funnel in session.scalars(select(Funnel)):
        version = funnel.live_version or latest_version(session, funnel)
        if version is not None:
            funnels[funnel.key] = frozenset(s.key for s in definition_of(session, version).stages)
    return Context(known, funnels, attribute_kinds(session))


def attribute_kinds(session: Session, sample: int = ATTRIBUTE_SAMPLE) -> dict[str, set[str]]:
    """The kinds of value (text, number, boolean, list) each contact attribute has
    held in the newest contacts; `timezone` and `locale` are always text."""
    kinds: dict[str, set[str]] = {"timezone": {"text"}, "locale": {"text"}, "email": {"text"}}
    rows = session.scalars(select(Contact.attributes).order_by(Contact.id.desc()).limit(sample))
    for attributes in rows:
        for name, value in (attributes or {}).items():
            if value is not None:
                kinds.setdefault(name, set()).add(attribute_kind(value))
    return kinds


def check(
    source: str, ctx: Context, others: Mapping[str, Collection[str]] | None = None
) -> SegmentDef:
    """The parsed definition, checked against `ctx` plus `others` (segments being
    loaded alongside it), or SegmentInvalid with every problem."""
    known = {**ctx.known, **(others or {})}
    result = validate_text(
        source, known=known, funnels=ctx.funnels, attribute_kinds=ctx.attribute_kinds
    )
    if result.segment is None:
        raise SegmentInvalid(result.problems)
    return result.segment


def refs_of(source: str) -> tuple[str, frozenset[str]] | None:
    """The key and references of a definition whose shape is right, else None: lets
    files that refer to each other be validated together."""
    result = validate_text(source)
    if result.segment is None:
        return None
    return result.segment.key, frozenset(result.segment.refs())


# --- Versions --------------------------------------------------------------------------


def _latest(session: Session, segment: Segment) -> SegmentVersion | None:
    return session.scalar(
        select(SegmentVersion)
        .where(SegmentVersion.segment_id == segment.id)
        .order_by(SegmentVersion.number.desc())
        .limit(1)
    )


def save_version(
    session: Session,
    source: str,
    definition: SegmentDef,
    data: dict[str, object],
    now: datetime,
    *,
    created_by: str | None = None,
) -> tuple[Segment, SegmentVersion, bool]:
    """Store a checked definition as its segment's next version; (segment, version,
    created). An unchanged definition makes no new version."""
    segment = session.scalar(select(Segment).where(Segment.key == definition.key))
    if segment is None:
        segment = Segment(key=definition.key, name=definition.name, created_at=now, updated_at=now)
        session.add(segment)
        session.flush()
    latest = _latest(session, segment)
    if latest is not None and latest.definition == data:
        return segment, latest, False
    version = SegmentVersion(
        segment_id=segment.id,
        number=latest.number + 1 if latest else 1,
        source=source,
        definition=data,
        created_at=now,
        created_by=created_by,
    )
    session.add(version)
    segment.name, segment.updated_at = definition.name, now
    session.flush()
    return segment, version, True


def publish(session: Session, segment: Segment, version: SegmentVersion, now: datetime) -> int:
    """Make `version` live and mark every contact due, so the worker brings their
    memberships up to date (a definition change is the one time everyone is looked
    at). Returns the number of contacts marked."""
    segment.live_version_id = version.id
    segment.status = "live"
    segment.updated_at = now
    version.published_at = version.published_at or now
    session.flush()
    return mark_everyone(session, now)


def mark_everyone(session: Session, now: datetime) -> int:
    """Make every contact due at `now` (keeping earlier due times): one statement."""
    everyone = select(Contact.id, literal(now, UTCDateTime()), literal(PUBLISH, String()))
    statement = due_upsert(session, everyone.where(true()))
    session.execute(statement)
    return session.scalar(select(func.count()).select_from(Contact)) or 0


def due_upsert(session: Session, rows: Select[Any] | None = None) -> Any:
    """INSERT into segment_checks (contact_id, due_at, reason), from `rows` or from
    parameters, keeping whichever due time is earlier."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(SegmentCheck)
    if rows is not None:
        statement = statement.from_select(["contact_id", "due_at", "reason"], rows)
    new = statement.excluded
    earlier = or_(SegmentCheck.due_at.is_(None), new.due_at < SegmentCheck.due_at)
    return statement.on_conflict_do_update(
        index_elements=["contact_id"],
        set_={
            "due_at": case((earlier, new.due_at), else_=SegmentCheck.due_at),
            "reason": case((earlier, new.reason), else_=SegmentCheck.reason),
        },
    )


def load_file(
    session: Session, path: Path, now: datetime, ctx: Context,
    others: Mapping[str, Collection[str]] | None = None,
) -> tuple[Segment, SegmentVersion, bool]:  # fmt: skip
    """Validate and publish one definition file; (segment, version, new version made)."""
    return load_text(session, path.read_text(), now, ctx, others)


def load_text(
    session: Session, source: str, now: datetime, ctx: Context,
    others: Mapping[str, Collection[str]] | None = None, *, created_by: str | None = None,
) -> tuple[Segment, SegmentVersion, bool]:  # fmt: skip
    """Validate, save and publish a definition; SegmentInvalid if it has problems."""
    definition = check(source, ctx, others)
    segment, version, created = save_version(
        session, source, definition, canonical(source), now, created_by=created_by
    )
    if segment.live_version_id != version.id:
        publish(session, segment, version, now)
    return segment, version, created


def canonical(source: str) -> dict[str, object]:
    """The canonical JSON of a valid definition: its plain data, comments dropped (an
    unchanged definition with new comments makes no new version)."""
    loaded = load_source(source, "segment", "")
    assert not isinstance(loaded, Problem), "canonical() takes a checked definition"
    return dict(loaded[0].data)


def export(session: Session, key: str) -> str | None:
    segment = session.scalar(select(Segment).where(Segment.key == key))
    if segment is None:
        return None
    version = segment.live_version or _latest(session, segment)
    return version.source if version else None


# --- What the API and CLI show ------------------------------------------------------------


def all_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.key)))


def find(session: Session, key: str) -> Segment | None:
    return session.scalar(select(Segment).where(Segment.key == key))


def sizes(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(SegmentMember.segment_id, func.count()).group_by(SegmentMember.segment_id)
    ).all()
    return {segment_id: n for segment_id, n in rows}


def size(session: Session, segment: Segment) -> int:
    query = select(func.count()).where(SegmentMember.segment_id == segment.id)
    return session.scalar(query) or 0


def recent_changes(
    session: Session, segment: Segment, change: str, limit: int = 20
) -> list[tuple[str, datetime]]:
    """The latest joins (or leaves): (email, at), newest first."""
    rows = session.execute(
        select(Contact.email, SegmentChange.at)
        .join(Contact, Contact.id == SegmentChange.contact_id)
        .where(SegmentChange.segment_id == segment.id, SegmentChange.change == change)
        .order_by(SegmentChange.at.desc(), SegmentChange.id.desc())
        .limit(limit)
    ).all()
    return [(email, at) for email, at in rows]


def members(
    session: Session, segment: Segment, *, after: int | None = None, limit: int = 100
) -> list[tuple[int, str, datetime]]:
    """Members in contact id order from `after`: (contact id, email, since)."""
    query = (
        select(Contact.id, Contact.email, SegmentMember.since)
        .join(Contact, Contact.id == SegmentMember.contact_id)
        .where(SegmentMember.segment_id == segment.id)
        .order_by(Contact.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Contact.id > after)
    return [(cid, email, since) for cid, email, since in session.execute(query).all()]


def pending(session: Session, now: datetime) -> int:
    """Contacts whose memberships are due to be brought up to date by `now`."""
    query = select(func.count()).where(SegmentCheck.due_at <= now)
    return session.scalar(query) or 0
