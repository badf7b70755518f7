"""Batches of events (the batch API): the rules of `ingest`, a few statements a batch.

`ingest.ingest_event` costs a dozen statements an event (find the contact, insert
the event, read its enrollments, one UPDATE per stage left, one flush per entry...).
Here each of those is one statement for the whole batch: the addresses are upserted
at once, the events inserted at once (ON CONFLICT on the client id says which are
new), the enrollments of the contacts concerned read at once, and every enrollment
change, stage move, email and cancellation written at once at the end. What an
event does is decided as `ingest.apply_event` decides it, in memory:

- a contact's events are applied in `occurred_at` order (ties: the order sent), as
  "occurred_at decides" says; contacts are independent of one another;
- an id sent twice in a batch stores the first event, in that order;
- only events of a type that a live funnel enters, moves or exits on reach the
  funnels (an index by type), and segments are evaluated only when
  `segment_membership.needs_evaluation` says the event can change them.

With segments live, each evaluation must see exactly the events the per-event path
would have stored by then, so events are stored in rounds: every contact's first
event, then every contact's second, and so on (most batches: one or two rounds).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import begin_write
from app.models import Contact, Event
from app.services import segment_membership
from app.services.contacts import normalize_email
from app.services.funnels import live_funnels
from app.services.ingest_journeys import Fact, Journeys
from app.services.segments import live_segments
from app.upsert import insert_many, one_of


@dataclass(frozen=True)
class Item:
    """One event of a batch, as the client sent it (the API has validated it)."""

    email: str
    type: str
    properties: Mapping[str, Any]
    occurred_at: datetime | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    event_id: int
    created: bool  # False when the client id was seen before (nothing else happened)


def processing_order(items: Sequence[Item], now: datetime) -> list[int]:
    """The indexes of `items` in the order they are applied: by when they happened,
    then as sent. (The per-item fallback of the API follows it too.)"""
    return sorted(range(len(items)), key=lambda i: (_when(items[i], now), i))


def _when(item: Item, now: datetime) -> datetime:
    # An event reported from the future (a skewed client clock) is taken as now.
    return min(item.occurred_at or now, now)


def ingest_batch(
    session: Session, items: Sequence[Item], now: datetime, *, source: str = "api"
) -> list[Outcome]:
    """Store `items` (once per client id and contact) and apply the new ones to every
    live funnel and segment; the outcome of each item, in the order given. The
    caller commits: accepted means stored."""
    if not items:
        return []
    begin_write(session)  # SQLite: the whole batch is one write transaction
    funnels = live_funnels(session)
    segments = live_segments(session)
    contacts = upsert_contacts(session, {item.email for item in items}, now)
    rows = [_row(item, contacts[normalize_email(item.email)][0], now, source) for item in items]
    order = processing_order(items, now)
    firsts, twins = _first_of_each_id(rows, order)
    created = {contact_id for contact_id, new in contacts.values() if new}
    journeys = Journeys(session, now, funnels, segments if segments.segments else None, created)
    outcomes: dict[int, Outcome] = {}
    ids = {row["contact_id"] for row in rows}
    handled: set[int] = session.info.setdefault(segment_membership.HANDLED, set())
    handled |= ids  # segments are brought up to date here: the flush hook need not
    try:
        for batch in _rounds(rows, firsts, by_contact=journeys.segments is not None):
            facts = _store(session, rows, batch, outcomes)
            journeys.apply(facts)
        journeys.write()
    finally:
        handled -= ids
    for index, first in twins.items():
        outcomes[index] = Outcome(outcomes[first].event_id, False)
    return [outcomes[index] for index in range(len(items))]


def upsert_contacts(
    session: Session, emails: Collection[str], now: datetime
) -> dict[str, tuple[int, bool]]:
    """(contact id, created) for each address (as given and normalised), creating the
    contacts that do not exist yet. A concurrent insert of the same address is
    absorbed by ON CONFLICT DO NOTHING: its row is read instead."""
    normal = {normalize_email(email) for email in emails}
    found = _contact_ids(session, normal)
    # Sorted: concurrent batches take the unique index's locks in the same order.
    missing = sorted(normal - found.keys())
    if missing:
        rows = [
            {"email": e, "attributes": {}, "status": "active", "created_at": now, "updated_at": now}
            for e in missing
        ]
        made = insert_many(session, Contact, rows, conflict=["email"], returning=["id", "email"])
        found.update((row.email, (row.id, True)) for row in made)
        found.update(_contact_ids(session, set(missing) - found.keys()))
    return found


def _contact_ids(session: Session, emails: set[str]) -> dict[str, tuple[int, bool]]:
    if not emails:
        return {}
    query = select(Contact.id, Contact.email).where(one_of(session, Contact.email, emails))
    return {email: (contact_id, False) for contact_id, email in session.execute(query)}


def _row(item: Item, contact_id: int, now: datetime, source: str) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "type": item.type,
        "properties": dict(item.properties or {}),
        "occurred_at": _when(item, now),
        "received_at": now,
        "client_id": item.client_id,
        "source": source,
    }


def _first_of_each_id(
    rows: list[dict[str, Any]], order: list[int]
) -> tuple[list[int], dict[int, int]]:
    """(the items to store, in order; each repeat of a client id -> its first item)."""
    firsts: list[int] = []
    twins: dict[int, int] = {}
    seen: dict[tuple[int, str], int] = {}
    for index in order:
        row = rows[index]
        if row["client_id"] is not None:
            key = (row["contact_id"], row["client_id"])
            if key in seen:
                twins[index] = seen[key]
                continue
            seen[key] = index
        firsts.append(index)
    return firsts, twins


def _rounds(rows: list[dict[str, Any]], firsts: list[int], by_contact: bool) -> list[list[int]]:
    """The items in the groups they are stored and applied in: all at once, or (for
    segments) each contact's first, then each contact's second..."""
    if not by_contact:
        return [firsts]
    rounds: list[list[int]] = []
    count: dict[int, int] = defaultdict(int)
    for index in firsts:
        contact_id = rows[index]["contact_id"]
        if count[contact_id] == len(rounds):
            rounds.append([])
        rounds[count[contact_id]].append(index)
        count[contact_id] += 1
    return rounds


def _store(
    session: Session, rows: list[dict[str, Any]], batch: list[int], outcomes: dict[int, Outcome]
) -> list[Fact]:
    """Insert the events of `batch`, record each one's outcome, and return the new
    ones (in the order of `batch`)."""
    ids = _insert_events(session, rows, batch)
    _stored_before(session, rows, [i for i in batch if ids[i] is None], outcomes)
    facts = []
    for index in batch:
        event_id = ids[index]
        if event_id is not None:
            outcomes[index] = Outcome(event_id, True)
            facts.append(Fact.of(event_id, rows[index]))
    return facts


def _insert_events(
    session: Session, rows: list[dict[str, Any]], batch: list[int]
) -> dict[int, int | None]:
    """Each item's new event id; None where its client id was stored before."""
    keyed = [i for i in batch if rows[i]["client_id"] is not None]
    # Sorted: two batches with the same ids wait for each other instead of deadlocking.
    keyed.sort(key=lambda i: (rows[i]["contact_id"], rows[i]["client_id"]))
    plain = [i for i in batch if rows[i]["client_id"] is None]
    conflict = ["contact_id", "client_id"]
    keyed_rows = [rows[i] for i in keyed]
    returned = insert_many(
        session, Event, keyed_rows, conflict=conflict, returning=["id", *conflict]
    )
    new = {(row.contact_id, row.client_id): row.id for row in returned}
    ids: dict[int, int | None] = {
        i: new.get((rows[i]["contact_id"], rows[i]["client_id"])) for i in keyed
    }
    inserted = insert_many(session, Event, [rows[i] for i in plain], returning=["id"])
    ids.update(zip(plain, (row.id for row in inserted), strict=True))
    return ids


def _stored_before(
    session: Session, rows: list[dict[str, Any]], seen: list[int], outcomes: dict[int, Outcome]
) -> None:
    """Outcomes for the items whose (contact, client id) was already stored."""
    if not seen:
        return
    contact_ids = {rows[i]["contact_id"] for i in seen}
    client_ids = {rows[i]["client_id"] for i in seen}
    query = select(Event.id, Event.contact_id, Event.client_id).where(
        one_of(session, Event.contact_id, contact_ids), one_of(session, Event.client_id, client_ids)
    )
    stored = {(c, k): event_id for event_id, c, k in session.execute(query)}
    for index in seen:
        event_id = stored[(rows[index]["contact_id"], rows[index]["client_id"])]
        outcomes[index] = Outcome(event_id, False)
