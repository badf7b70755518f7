"""Segment membership, kept current incrementally: nobody is ever rescanned.

A contact's memberships are evaluated again only when
- one of their events is ingested (`on_event`, in the event's own transaction);
- their due time comes (`refresh`, at the start of every tick): the earliest moment
  a time-based condition can change, as the engine reported it (24 hours after the
  last add to cart, 60 days after the last click...), kept in `segment_checks`;
- something else about them changed (attributes, consent, a funnel move outside an
  event): a session hook (`_touched`) makes them due at once, for the next tick.

Evaluation walks time forward from where the contact was last evaluated to now,
edge by edge, so every join and leave is recorded at the moment it happened (the
24 hours passing, not the tick that noticed), and funnels react as of that moment
(`ingest.apply_segment`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.engine.segments import Verdict, evaluate_all, next_check
from app.models import (
    Contact,
    Enrollment,
    Event,
    SegmentChange,
    SegmentCheck,
    SegmentMember,
    Subscription,
)
from app.services import ingest
from app.services.funnels import LiveFunnel, live_funnels
from app.services.segment_facts import gather
from app.services.segments import LiveSet, due_upsert, live_segments
from app.upsert import insert_ignore, insert_many, one_of

# session.info key: contacts whose segments this transaction evaluates itself, so the
# hook does not also mark them due.
HANDLED = "nurture.segments.handled"
MAX_STEPS = 50  # time edges followed per contact at once; the rest waits for a tick
ROUNDS = 3  # evaluations at one moment while joins move funnels (in_stage segments)
BUDGET = 5000  # contacts per tick, so a publish's backfill cannot starve sending


class _Run:
    """One contact's evaluation: its memberships as loaded, and what to record."""

    def __init__(
        self, session: Session, contact: Contact, live: LiveSet,
        funnels: list[LiveFunnel] | None, members: list[SegmentMember] | None = None,
    ) -> None:  # fmt: skip
        self.session, self.contact, self.live = session, contact, live
        self.funnels = funnels
        self.moved = False  # did a join enroll, move or exit the contact in a funnel?
        if members is None:
            query = select(SegmentMember).where(SegmentMember.contact_id == contact.id)
            members = list(session.scalars(query))
        self.members = {row.segment_id: row for row in members}

    def evaluate(self, at: datetime, reason: str, event_id: int | None) -> dict[str, Verdict]:
        """Evaluate as of `at` and record the changes; a join may move funnels, which
        may change segments built on funnels: evaluate again then (a few rounds)."""
        verdicts: dict[str, Verdict] = {}
        for _ in range(ROUNDS):
            facts = gather(self.session, self.contact, at, self.live.needs)
            verdicts = evaluate_all(self.live.definitions, facts, at, ordered=True)
            joined = self.record(verdicts, at, reason, event_id)
            if not joined or not self.react(joined, at) or not self.live.needs.journeys:
                break
        return verdicts

    def record(
        self, verdicts: dict[str, Verdict], at: datetime, reason: str, event_id: int | None
    ) -> list[str]:
        """Write joins and leaves; the keys of the segments joined."""
        joined = []
        for live in self.live.segments:
            member = verdicts[live.definition.key].member
            row = self.members.get(live.segment_id)
            if member == (row is not None):
                continue
            if member:
                row = SegmentMember(
                    segment_id=live.segment_id, contact_id=self.contact.id, since=at
                )
                self.session.add(row)
                self.members[live.segment_id] = row
                joined.append(live.definition.key)
            else:
                self.session.delete(self.members.pop(live.segment_id))
            self.session.add(
                SegmentChange(
                    segment_id=live.segment_id, contact_id=self.contact.id, at=at,
                    change="joined" if member else "left", reason=reason, event_id=event_id,
                )
            )  # fmt: skip
        return joined

    def react(self, joined: list[str], at: datetime) -> bool:
        """Let funnels enroll, move and exit on the joins; False if none listens (only
        live funnels are asked: a segment that no live version names moves nothing)."""
        if self.funnels is None:
            self.funnels = live_funnels(self.session)
        listened = _listened(self.funnels)
        heard = [key for key in joined if key in listened]
        for key in heard:
            ingest.apply_segment(self.session, self.contact, key, at, self.funnels)
        self.moved = self.moved or bool(heard)
        return bool(heard)


def _listened(funnels: list[LiveFunnel]) -> set[str]:
    """The segments live funnels enter, move or exit on."""
    return {key for live in funnels for key in live.definition.segments()}


@dataclass(frozen=True)
class Pending:
    """A contact whose event is being applied: the live segments, and their check row,
    locked before the funnels move (locks are always taken in that order)."""

    live: LiveSet
    check: SegmentCheck
    new: bool


def begin(session: Session, contact: Contact, *, new: bool = False) -> Pending | None:
    """Lock the contact's segment state before one of their events is applied (`new`:
    the event created the contact); None when no segment is live."""
    live = live_segments(session)
    if not live.segments:
        return None
    return Pending(live, _lock(session, contact.id, new), new)


def on_event(
    session: Session, contact: Contact, event: Event, now: datetime, pending: Pending,
    funnels: list[LiveFunnel] | None = None,
) -> bool:  # fmt: skip
    """Bring the contact's memberships up to date after one of their events; True if
    a join made a funnel enroll, move or exit them (their enrollments changed)."""
    if not needs_evaluation(pending, event.type, now):
        return False  # nothing this event could change
    members: list[SegmentMember] | None = [] if pending.new else None
    run = _Run(session, contact, pending.live, funnels, members)
    _bring_up_to_date(run, pending.check, now, final=("event", event.id))
    return run.moved


def needs_evaluation(pending: Pending, event_type: str, now: datetime) -> bool:
    """Can an event of this type, at `now`, change the contact's memberships? Not when
    they were evaluated before, are not due, and no live segment counts this type."""
    check = pending.check
    overdue = check.due_at is not None and check.due_at <= now
    return check.checked_at is None or overdue or pending.live.needs.moved_by(event_type)


def lock_many(session: Session, contact_ids: Collection[int]) -> dict[int, SegmentCheck]:
    """`_lock` for many contacts at once (the batch API): their check rows, locked in
    contact order, so that concurrent batches cannot deadlock on them."""
    ids = sorted(contact_ids)
    found = _locked(session, ids)
    missing = [contact_id for contact_id in ids if contact_id not in found]
    if missing:
        rows = [_unchecked(contact_id) for contact_id in missing]
        insert_many(session, SegmentCheck, rows, conflict=["contact_id"])
        found.update(_locked(session, missing))  # ours, and any a concurrent twin inserted
    return found


def _locked(session: Session, ids: list[int]) -> dict[int, SegmentCheck]:
    query = select(SegmentCheck).where(one_of(session, SegmentCheck.contact_id, ids))
    query = query.order_by(SegmentCheck.contact_id).with_for_update()
    rows = session.scalars(query.execution_options(populate_existing=True))
    return {row.contact_id: row for row in rows}


def _lock(session: Session, contact_id: int, new: bool = False) -> SegmentCheck:
    """The contact's check row, locked: evaluations of one contact (an event in a web
    process, the tick in a worker) happen one after the other, never interleaved."""
    check = None if new else session.get(SegmentCheck, contact_id, with_for_update=True)
    if check is None:
        check = insert_ignore(session, SegmentCheck, _unchecked(contact_id), ["contact_id"])
    if check is None:  # a concurrent twin inserted it first
        check = session.get(SegmentCheck, contact_id, with_for_update=True, populate_existing=True)
    assert check is not None
    return check


def _unchecked(contact_id: int) -> dict[str, Any]:
    """The check row of a contact never evaluated."""
    return {"contact_id": contact_id, "due_at": None, "reason": None, "checked_at": None}


def _bring_up_to_date(
    run: _Run, check: SegmentCheck, until: datetime, final: tuple[str, int | None] | None
) -> None:
    """Evaluate at each due moment up to `until` (then at `until` itself when `final`
    gives the reason to: an event), and keep the next due moment."""
    at: datetime | None = None
    nxt: datetime | None = None
    if check.due_at is not None and check.due_at <= until:
        at = max(check.due_at, check.checked_at or check.due_at)
        reason = check.reason or "time"
        for _ in range(MAX_STEPS):
            nxt = next_check(run.evaluate(at, reason, None).values())
            if nxt is None or nxt > until or nxt <= at:
                break
            at, reason = nxt, "time"
    if final is not None and (at is None or at < until):
        at = until
        nxt = next_check(run.evaluate(until, final[0], final[1]).values())
    check.checked_at = max(at or until, check.checked_at or until)
    check.due_at, check.reason = nxt, "time" if nxt is not None else None


# --- The tick -----------------------------------------------------------------------------


def refresh(
    sessions: sessionmaker[Session], now: datetime, *, batch: int = 500, budget: int = BUDGET
) -> int:
    """Bring every contact due by `now` up to date, in batches (one transaction each);
    at most `budget` contacts, the rest at the next tick. Returns how many."""
    done: set[int] = set()
    while len(done) < budget:
        with sessions.begin() as s:
            live = live_segments(s)
            if not live.segments:  # marks made before any segment existed: drop them
                _clear(s, now)
                break
            checks = _claim(s, now, min(batch, budget - len(done)), done)
            if not checks:
                break
            _process(s, checks, live, now)
            done |= {c.contact_id for c in checks}
    return len(done)


def _claim(s: Session, now: datetime, limit: int, done: set[int]) -> list[SegmentCheck]:
    """Due checks, oldest first. SKIP LOCKED: two workers never evaluate one contact at
    once, and a contact an event is being applied to right now waits for the next tick."""
    query = select(SegmentCheck).where(SegmentCheck.due_at <= now)
    if done:
        query = query.where(SegmentCheck.contact_id.not_in(done))
    query = query.order_by(SegmentCheck.due_at, SegmentCheck.contact_id).limit(limit)
    return list(s.scalars(query.with_for_update(skip_locked=True)))


def _clear(s: Session, now: datetime) -> None:
    s.execute(
        update(SegmentCheck)
        .where(SegmentCheck.due_at <= now)
        .values(due_at=None, reason=None)
        .execution_options(synchronize_session=False)
    )


def _process(s: Session, checks: list[SegmentCheck], live: LiveSet, now: datetime) -> None:
    ids = {c.contact_id for c in checks}
    contacts = {
        c.id: c
        for c in s.scalars(
            select(Contact).where(Contact.id.in_(ids)).options(selectinload(Contact.subscriptions))
        )
    }
    members: dict[int, list[SegmentMember]] = {i: [] for i in ids}
    for row in s.scalars(select(SegmentMember).where(SegmentMember.contact_id.in_(ids))):
        members[row.contact_id].append(row)
    handled: set[int] = s.info.setdefault(HANDLED, set())
    handled |= ids
    funnels = live_funnels(s)
    try:
        for check in checks:
            contact = contacts[check.contact_id]
            run = _Run(s, contact, live, funnels, members[contact.id])
            _bring_up_to_date(run, check, now, None)
    finally:
        handled -= ids


# --- Marking contacts due -------------------------------------------------------------------


def touch(session: Session, marks: dict[int, datetime], reason: str = "update") -> None:
    """Make these contacts due (at the given moments) for the next tick."""
    if marks:
        rows = [
            {"contact_id": c, "due_at": at, "reason": reason} for c, at in sorted(marks.items())
        ]
        session.connection().execute(due_upsert(session), rows)


_WATCHED: dict[type, tuple[str, ...]] = {
    Contact: ("attributes", "status", "timezone", "locale"),
    Subscription: ("status",),
    Enrollment: ("stage_key", "status"),
}


@event.listens_for(Session, "after_flush")
def _touched(session: Session, _context: Any) -> None:
    """Contacts whose attributes, consent or funnel journeys changed outside an event
    (the API, the preference centre, a bounce, a funnel timeout or publish) are due
    at once: their segments may have changed."""
    handled = session.info.get(HANDLED, ())
    marks: dict[int, datetime] = {}
    for contact_id, at in _changes(session, handled):
        marks[contact_id] = min(marks.get(contact_id, at), at)
    touch(session, marks)


def _changes(session: Session, handled: Collection[int]) -> Iterable[tuple[int, datetime]]:
    """(contact, when) for each watched change the flush wrote, but those of `handled`
    contacts, skipped before their history is read (the costly part of a large flush)."""
    new = session.new  # (a new set at each access: read once, not once per object)
    for obj in [*new, *session.dirty]:
        watched = _WATCHED.get(type(obj))
        if watched is None:
            continue
        found = _moment(obj)
        if found is None or found[1] is None or found[0] in handled:
            continue
        state = inspect(obj)  # in after_flush, history still holds what was flushed
        if obj in new or any(state.attrs[name].history.has_changes() for name in watched):
            yield found  # type: ignore[misc]


def _moment(obj: Any) -> tuple[int, datetime | None] | None:
    if isinstance(obj, Contact):
        return obj.id, obj.updated_at
    if isinstance(obj, Subscription):
        return obj.contact_id, obj.updated_at
    if isinstance(obj, Enrollment):
        return obj.contact_id, obj.exited_at or obj.stage_entered_at
    return None
