"""The stage machine applied to a batch of stored events in memory, written at once.

`Journeys` holds the enrollments of the contacts a batch concerns, as plain
`Journey` objects, and applies each new event to them by the rules
`ingest.apply_event` follows (the decisions are the same functions: `may_enter`,
`event_step`, `step_into`, `close`). Where the per-event path flushes after each
entry and sends an UPDATE for each stage left, this keeps everything in memory and
writes it in `write()`, a statement per table: new enrollments, changed ones, the
cancellations of emails already in the database, new stage moves, new emails. An
email scheduled and cancelled within the batch is written once, as cancelled, with
the reason the per-event path would have given it.

Not ORM objects: building, tracking and flushing a few thousand of them would cost
more than everything else the batch does. The segment path, which works on ORM
objects, gets the database up to date first and its changes are read back after.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.engine import machine
from app.engine.conditions import CONTACT_PREFIX, value_at
from app.engine.model import Condition, FunnelDef
from app.models import DUE, Contact, Enrollment, Event, Message, SegmentCheck, StageMove
from app.services import ingest, segment_membership
from app.services.contacts import render_view
from app.services.funnels import LiveFunnel, version_definition
from app.services.segments import LiveSet
from app.upsert import insert_many, one_of, update_many


# Not frozen, though nothing changes one: frozen dataclasses are slow to make, and a
# batch makes a thousand.
@dataclass(slots=True)
class Fact:
    """A stored event, as the stage machine reads it."""

    id: int
    contact_id: int
    type: str
    properties: dict[str, Any]
    occurred_at: datetime
    received_at: datetime
    client_id: str | None
    source: str

    @classmethod
    def of(cls, event_id: int, row: Mapping[str, Any]) -> Fact:
        return cls(id=event_id, **row)

    def event(self) -> Event:
        """As a detached Event (what segment evaluation reads)."""
        return Event(
            id=self.id,
            contact_id=self.contact_id,
            type=self.type,
            properties=self.properties,
            occurred_at=self.occurred_at,
            received_at=self.received_at,
            client_id=self.client_id,
            source=self.source,
        )


class FunnelIndex:
    """Which live funnels an event can concern, found without asking all of them.

    An event enters a funnel whose entry names its type (and, where the entry asks
    for a property equal to a text, has that text there: the twenty funnels that
    enter on `ebook_downloaded` are told apart by their `ebook`), and moves or exits
    an active enrollment whose funnel names its type in a transition or exit goal.
    Active enrollments of a live funnel are on its live version (publishing moves
    them all to it), so the live definitions say everything an event can do.
    """

    def __init__(self, funnels: list[LiveFunnel]) -> None:
        self.rank = {live.funnel_id: rank for rank, live in enumerate(funnels)}
        self.moves_on = {live.funnel_id: _moves_on(live.definition) for live in funnels}
        self.types = {t for types in self.moves_on.values() for t in types}
        self.unkeyed: dict[str, list[LiveFunnel]] = defaultdict(list)
        self.keyed: dict[tuple[str, str], dict[str, list[LiveFunnel]]] = defaultdict(dict)
        for live in funnels:
            entry = live.definition.entry
            if entry.segment is not None or not entry.on:
                continue
            self.types.add(entry.on)
            key = _text_equality(entry.where)
            if key is None:
                self.unkeyed[entry.on].append(live)
            else:
                path, value = key
                self.keyed[(entry.on, path)].setdefault(value, []).append(live)
        # Event type -> the properties its entries are keyed on.
        self.paths: dict[str, list[str]] = defaultdict(list)
        for event_type, path in self.keyed:
            self.paths[event_type].append(path)
        self.reads_contact = any(_reads_contact(live.definition) for live in funnels)

    def entering(self, event_type: str, properties: Mapping[str, Any]) -> list[LiveFunnel]:
        """The funnels this event may enter (their other conditions still to check),
        in priority order."""
        found = list(self.unkeyed.get(event_type, ()))
        for path in self.paths.get(event_type, ()):
            value = value_at(properties, path)
            if isinstance(value, str):
                found.extend(self.keyed[(event_type, path)].get(value, ()))
        return sorted(found, key=lambda live: self.rank[live.funnel_id])


def _moves_on(funnel: FunnelDef) -> frozenset[str]:
    """The event types that move or end an enrollment in this funnel."""
    found = {goal.on for goal in funnel.exits if goal.segment is None}
    found |= {t.on.on for s in funnel.stages for t in s.transitions if t.on is not None}
    return frozenset(found - {""})


def _text_equality(where: tuple[Condition, ...]) -> tuple[str, str] | None:
    """An event property the conditions require to equal a text, and that text. (Text
    only: in a dict, True, 1 and 1.0 are one key, which `where` tells apart.)"""
    for condition in where:
        if (
            condition.op == "eq"
            and isinstance(condition.value, str)
            and not condition.path.startswith(CONTACT_PREFIX)
        ):
            return condition.path, condition.value
    return None


def _reads_contact(funnel: FunnelDef) -> bool:
    """Does any event condition of the funnel read contact attributes?"""
    wheres = [funnel.entry.where, *(goal.where for goal in funnel.exits)]
    wheres += [t.on.where for s in funnel.stages for t in s.transitions if t.on is not None]
    return any(c.path.startswith(CONTACT_PREFIX) for where in wheres for c in where)


@dataclass(eq=False, slots=True)  # (eq=False: hashed by identity, to be kept in sets)
class Journey:
    """An enrollment as the batch holds it: the row's columns, as plain attributes."""

    id: int | None  # None until written
    contact_id: int
    funnel_id: int
    version_id: int
    status: str
    stage_key: str
    stage_entered_at: datetime
    visit: int
    stage_event_id: int | None
    timeout_at: datetime | None
    enrolled_at: datetime
    exited_at: datetime | None = None
    exit_label: str | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS if name != "id"}


_TABLE = Enrollment.__table__
_COLUMNS = [column.name for column in _TABLE.columns]
# What an event can change (the rest is fixed when the enrollment is made).
_CHANGING = ("status", "stage_key", "stage_entered_at", "visit", "stage_event_id",
             "timeout_at", "exited_at", "exit_label")  # fmt: skip
assert [f.name for f in fields(Journey)] == _COLUMNS, "Journey must mirror Enrollment"
# The view of a contact when no funnel condition reads contact attributes.
_NO_VIEW: dict[str, Any] = {}


class _Writes:
    """What `Journeys.write` owes the database."""

    def __init__(self) -> None:
        self.fresh: list[Journey] = []  # made since the last write: inserted
        self.changed: set[Journey] = set()  # read from the database, then changed
        self.moves: list[tuple[Journey, dict[str, Any]]] = []
        self.messages: list[tuple[Journey, dict[str, Any]]] = []
        # Each journey's emails among `messages` still waiting to be sent.
        self.unsent: dict[Journey, list[dict[str, Any]]] = {}
        # Journeys whose waiting emails in the database are to be cancelled, and why.
        self.cancels: dict[Journey, str] = {}


class Journeys:
    """The funnel journeys (and segment memberships) of a batch's contacts."""

    def __init__(
        self,
        session: Session,
        now: datetime,
        funnels: list[LiveFunnel],
        segments: LiveSet | None,
        created: Collection[int],
    ) -> None:
        self.session, self.now, self.funnels = session, now, funnels
        self.index = FunnelIndex(funnels)
        self.segments = segments  # None when no segment is live
        self.created = set(created)  # contacts this batch made, until their first event
        self.contacts: dict[int, Contact] = {}
        self.views: dict[int, dict[str, Any]] = {}
        self.journeys: dict[int, list[Journey]] = {}
        self.checks: dict[int, SegmentCheck] = {}
        self.writes = _Writes()

    def apply(self, facts: list[Fact]) -> None:
        """Apply new events, each contact's in the order given."""
        moving = {f.contact_id for f in facts if f.type in self.index.types}
        evaluated = {f.contact_id for f in facts} if self.segments is not None else set()
        self._load(moving, evaluated)
        for fact in facts:
            if fact.type in self.index.types:
                self._funnels(fact)
            if self.segments is not None:
                self._segments(fact, self.segments)

    def _load(self, moving: set[int], evaluated: set[int]) -> None:
        """Read what the events need, a statement for all contacts: segment checks
        (locked first, as the per-event path does), contacts (as ORM objects for the
        segments, only their attributes for the funnels), enrollments."""
        session = self.session
        unlocked = evaluated - self.checks.keys()
        if unlocked:
            self.checks.update(segment_membership.lock_many(session, unlocked))
        unread = evaluated - self.contacts.keys()
        if unread:
            query = select(Contact).where(one_of(session, Contact.id, unread))
            for contact in session.scalars(query.options(selectinload(Contact.subscriptions))):
                self.contacts[contact.id] = contact
        unread = moving - self.views.keys()
        if unread and self.index.reads_contact:
            self.views.update(_views(session, unread))
        unread = moving - self.journeys.keys()
        if unread:
            self.journeys.update(_read(session, unread))

    def _funnels(self, fact: Fact) -> None:
        """`ingest.apply_event`, on the journeys in memory: each active enrollment moves
        on (or not), and the funnels the contact is not active in may enroll them.
        (Funnels are independent of one another, so the order does not matter.)"""
        mine = self.journeys[fact.contact_id]
        active = {j.funnel_id: j for j in mine if j.status == "active"}
        view = self.views.get(fact.contact_id, _NO_VIEW)
        for funnel_id, journey in active.items():
            if fact.type in self.index.moves_on.get(funnel_id, ()):
                self._advance(journey, fact, view)
        entering = self.index.entering(fact.type, fact.properties)
        seen = {j.funnel_id for j in mine} if entering else set()
        for live in entering:
            if live.funnel_id not in active and ingest.may_enter(
                live, fact.type, fact.properties, view, seen
            ):
                mine.append(self._enroll(fact, live))

    def _advance(self, journey: Journey, fact: Fact, view: Mapping[str, Any]) -> None:
        funnel = version_definition(self.session, journey.version_id)
        found = ingest.event_step(
            funnel, journey, fact.type, fact.properties, fact.occurred_at, view
        )
        if found is None:
            return
        step, at = found
        if journey.id is not None:
            self.writes.changed.add(journey)
        if isinstance(step, machine.ExitGoal):
            self._cancel(journey, ingest.exiting(step.label))
            move = ingest.move_row(
                journey, at, journey.stage_key, None, "exit", fact.id, label=step.label
            )
            self.writes.moves.append((journey, move))
            ingest.close(journey, step.label, at)
        else:
            previous = journey.stage_key
            self._cancel(journey, ingest.leaving(previous, step.to))
            ingest.step_into(journey, funnel, step.to, at, fact.id)
            self._arrive(journey, funnel, previous, at, "event", fact.id)

    def _enroll(self, fact: Fact, live: LiveFunnel) -> Journey:
        journey = Journey(
            None, **ingest.first_stage(fact.contact_id, live, fact.occurred_at, fact.id)
        )
        self.writes.fresh.append(journey)
        self._arrive(journey, live.definition, None, fact.occurred_at, "entry", fact.id)
        return journey

    def _arrive(
        self,
        journey: Journey,
        funnel: FunnelDef,
        previous: str | None,
        at: datetime,
        reason: str,
        event_id: int,
    ) -> None:
        """`ingest._arrive`: the move, and the stage's emails for this visit."""
        move = ingest.move_row(journey, at, previous, journey.stage_key, reason, event_id)
        self.writes.moves.append((journey, move))
        rows = ingest.message_rows(journey, funnel, at)
        self.writes.messages.extend((journey, row) for row in rows)
        self.writes.unsent[journey] = rows

    def _cancel(self, journey: Journey, why: str) -> None:
        """`ingest._cancel_unsent`: the emails still waiting are cancelled, those of
        this batch at once, those in the database when written. (Only the first
        reason counts there: by the second, the database has none waiting left.)"""
        for row in self.writes.unsent.pop(journey, ()):
            row["status"], row["reason"] = "cancelled", why
        if journey.id is not None:
            self.writes.cancels.setdefault(journey, why)

    def _segments(self, fact: Fact, live: LiveSet) -> None:
        """`segment_membership.on_event`, after the event's funnel moves."""
        contact_id = fact.contact_id
        new = contact_id in self.created
        self.created.discard(contact_id)
        pending = segment_membership.Pending(live, self.checks[contact_id], new)
        if not segment_membership.needs_evaluation(pending, fact.type, self.now):
            return
        session = self.session
        self.write()  # the evaluation reads the database: it must hold every move so far
        contact = self.contacts[contact_id]
        event = fact.event()
        if segment_membership.on_event(session, contact, event, self.now, pending, self.funnels):
            # Joins moved funnels (through the ORM): read the journeys back, and let
            # the ORM forget its copies, which this batch's own writes would outdate.
            session.flush()
            _forget_enrollments(session, contact_id)
            self.journeys.update(_read(session, {contact_id}))

    def write(self) -> None:
        """Write everything held so far, a statement per table, in an order the
        constraints accept: changed enrollments first (an exit frees the funnel's
        one active place, which a re-entry in the same batch takes), then new ones,
        cancellations (before the new emails, which they must not touch), stage
        moves and emails."""
        writes, self.writes = self.writes, _Writes()
        changes = [{"id": j.id, **{name: getattr(j, name) for name in _CHANGING}}
                   for j in writes.changed]  # fmt: skip
        update_many(self.session, Enrollment, changes, "id")
        rows = [journey.row() for journey in writes.fresh]
        made = insert_many(self.session, Enrollment, rows, returning=["id"])
        for journey, row in zip(writes.fresh, made, strict=True):
            journey.id = row.id
        cancels = [{"enrollment_id": j.id, "status": "cancelled", "reason": why}
                   for j, why in writes.cancels.items()]  # fmt: skip
        update_many(self.session, Message, cancels, "enrollment_id", where=DUE)
        for model, pending in ((StageMove, writes.moves), (Message, writes.messages)):
            rows = [{**row, "enrollment_id": journey.id} for journey, row in pending]
            insert_many(self.session, model, rows)


def _views(session: Session, contact_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """The contacts as conditions see them (`contacts.render_view`), from four columns."""
    columns = (Contact.id, Contact.email, Contact.attributes, Contact.timezone, Contact.locale)
    query = select(*columns).where(one_of(session, Contact.id, contact_ids))
    # A row has every attribute render_view reads of a Contact.
    return {row.id: render_view(cast(Contact, row)) for row in session.execute(query)}


def _read(session: Session, contact_ids: Collection[int]) -> dict[int, list[Journey]]:
    """The enrollments of these contacts (every one: the exited say who may re-enter),
    locked (PostgreSQL) until the batch commits: the worker claims due timeouts
    with SKIP LOCKED, so it cannot move one of them on meanwhile, only for this
    batch to write its older copy over the move. In id order, as every batch locks."""
    found: dict[int, list[Journey]] = {contact_id: [] for contact_id in contact_ids}
    query = select(_TABLE).where(one_of(session, _TABLE.c.contact_id, contact_ids))
    for row in session.execute(query.order_by(_TABLE.c.id).with_for_update()):
        found[row.contact_id].append(Journey(*row))  # (the columns, in the table's order)
    return found


def _forget_enrollments(session: Session, contact_id: int) -> None:
    """Expire the contact's Enrollment objects in the session, so that the ORM reads
    them again when it next needs them (after the batch's writes)."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Enrollment) and obj.contact_id == contact_id:
            session.expire(obj)
