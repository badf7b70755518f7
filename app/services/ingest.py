"""Event ingestion and the stage machine applied to the database (rules 1 and 5).

`ingest_event` stores the event and, in the same transaction, enrolls, moves and
exits the contact in every live funnel. The caller commits: accepted means stored.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.engine import machine
from app.engine.model import FunnelDef
from app.models import WAITING, Contact, Enrollment, Event, Message, StageMove
from app.services import contacts as contacts_svc
from app.services.funnels import LiveFunnel, live_funnels, version_definition
from app.upsert import insert_ignore_id


class EnrollmentState(Protocol):
    """What the stage machine reads and writes of an enrollment: an Enrollment, or
    the batch path's plain copy of one (`ingest_journeys.Journey`)."""

    @property
    def id(self) -> int | None: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def funnel_id(self) -> int: ...
    @property
    def version_id(self) -> int: ...
    @property
    def enrolled_at(self) -> datetime: ...

    status: str
    stage_key: str
    stage_entered_at: datetime
    visit: int
    stage_event_id: int | None
    timeout_at: datetime | None
    exited_at: datetime | None
    exit_label: str | None


@dataclass(frozen=True)
class Ingested:
    event: Event
    created: bool  # False when the client id was seen before (nothing else happened)


def ingest_event(
    session: Session,
    *,
    email: str,
    type: str,
    properties: Mapping[str, Any] | None,
    occurred_at: datetime | None,
    now: datetime,
    client_id: str | None = None,
    source: str = "api",
    funnels: list[LiveFunnel] | None = None,
) -> Ingested:
    """Store one event (idempotent on `client_id` per contact) and apply it."""
    contact, new_contact = contacts_svc.get_or_create(session, email, now)
    # An event reported from the future (a skewed client clock) is taken as now.
    values = {
        "contact_id": contact.id,
        "type": type,
        "properties": dict(properties or {}),
        "occurred_at": min(occurred_at or now, now),
        "received_at": now,
        "client_id": client_id,
        "source": source,
    }
    event_id = insert_ignore_id(session, Event, values, ["contact_id", "client_id"])
    if event_id is None:  # the same client id was stored before: nothing more happens
        seen = session.scalar(
            select(Event).where(Event.contact_id == contact.id, Event.client_id == client_id)
        )
        assert seen is not None
        return Ingested(seen, False)
    # The engine only reads the event, so a detached copy of the row will do.
    event = Event(id=event_id, **values)
    from app.services import segment_membership  # (local: it builds on this module)

    # Segments are brought up to date right after the funnels, in this transaction,
    # so the session hook need not mark this contact due for the tick as well.
    pending = segment_membership.begin(session, contact, new=new_contact)
    handled: set[int] = session.info.setdefault(segment_membership.HANDLED, set())
    handled.add(contact.id)
    try:
        apply_event(session, contact, event, now, funnels)
        if pending is not None:
            segment_membership.on_event(session, contact, event, now, pending, funnels)
    finally:
        handled.discard(contact.id)
    return Ingested(event, True)


def apply_event(
    session: Session,
    contact: Contact,
    event: Event,
    now: datetime,
    funnels: list[LiveFunnel] | None = None,
) -> None:
    """Enroll, move and exit `contact` in every live funnel, higher priority first."""
    view = contacts_svc.render_view(contact)
    active, seen = _enrollments(session, contact.id)
    entering: list[tuple[Enrollment, FunnelDef]] = []
    for live in funnels if funnels is not None else live_funnels(session):
        enrollment = active.get(live.funnel_id)
        if enrollment is not None:
            _advance(session, enrollment, event, view, now)
        elif may_enter(live, event.type, event.properties, view, seen):
            enrollment = new_enrollment(contact.id, live, event.occurred_at, event.id)
            entering.append((enrollment, live.definition))
    _enter(session, entering, event.occurred_at, event)


def may_enter(
    live: LiveFunnel,
    event_type: str,
    properties: Mapping[str, Any],
    view: Mapping[str, Any],
    seen: Collection[int],
) -> bool:
    """Does this event enroll the contact (not active in the funnel; `seen`: the
    funnels they were ever enrolled in)? Once per funnel, unless `reentry`."""
    matches = machine.entry_matches(live.definition, event_type, properties, view)
    return matches and _may_enroll_again(live, seen)


def _may_enroll_again(live: LiveFunnel, seen: Collection[int]) -> bool:
    """Once per funnel, unless `reentry` (`seen`: the funnels ever enrolled in)."""
    return live.definition.reentry or live.funnel_id not in seen


def _enrollments(session: Session, contact_id: int) -> tuple[dict[int, Enrollment], set[int]]:
    """The contact's active enrollments by funnel, and the funnels ever enrolled in."""
    query = select(Enrollment).where(Enrollment.contact_id == contact_id)
    enrollments = session.scalars(query).all()
    active = {e.funnel_id: e for e in enrollments if e.status == "active"}
    return active, {e.funnel_id for e in enrollments}


def _enter(
    session: Session,
    entering: list[tuple[Enrollment, FunnelDef]],
    at: datetime,
    event: Event | None,
) -> None:
    if entering:
        session.add_all(e for e, _ in entering)
        session.flush()  # one INSERT for every new enrollment; their ids are needed below
        for enrollment, funnel in entering:
            _arrive(session, enrollment, funnel, None, at, "entry", event)
    session.flush()


def new_enrollment(
    contact_id: int, live: LiveFunnel, at: datetime, event_id: int | None
) -> Enrollment:
    """An enrollment already standing in the first stage, so it is inserted once."""
    return Enrollment(**first_stage(contact_id, live, at, event_id))


def first_stage(
    contact_id: int, live: LiveFunnel, at: datetime, event_id: int | None
) -> dict[str, Any]:
    """The columns of a new enrollment in the funnel's first stage, entered at `at`."""
    funnel = live.definition
    first = funnel.first_stage.key
    return {
        "contact_id": contact_id,
        "funnel_id": live.funnel_id,
        "version_id": live.version_id,
        "status": "active",
        "stage_key": first,
        "stage_entered_at": at,
        "visit": 1,
        "enrolled_at": at,
        "stage_event_id": event_id,
        "timeout_at": machine.timeout_at(funnel, first, at),
    }


def apply_segment(
    session: Session,
    contact: Contact,
    segment: str,
    at: datetime,
    funnels: list[LiveFunnel] | None = None,
) -> None:
    """What joining `segment` at `at` does in every live funnel, by the same rules as an
    event: enroll where the entry names the segment (once, unless `reentry`; one
    active enrollment per funnel), move on `if: {segment: ...}`, exit on its goals."""
    active, seen = _enrollments(session, contact.id)
    entering: list[tuple[Enrollment, FunnelDef]] = []
    for live in funnels if funnels is not None else live_funnels(session):
        enrollment = active.get(live.funnel_id)
        if enrollment is not None:
            _advance_on_segment(session, enrollment, segment, at)
        elif machine.entry_on_segment(live.definition, segment) and _may_enroll_again(live, seen):
            entering.append((new_enrollment(contact.id, live, at, None), live.definition))
    _enter(session, entering, at, None)


def _advance_on_segment(
    session: Session, enrollment: Enrollment, segment: str, at: datetime
) -> None:
    """As `_advance`, for joining `segment` at `at`: a join before the enrollment
    began does nothing (and one before the current stage moves nothing: `_timed`)."""
    if at < enrollment.enrolled_at:
        return
    funnel = version_definition(session, enrollment.version_id)
    step = machine.on_segment(funnel, enrollment.stage_key, segment)
    _take(session, enrollment, funnel, _timed(enrollment, step, at), "segment", None)


def _advance(
    session: Session, enrollment: Enrollment, event: Event, view: Mapping[str, Any], now: datetime
) -> None:
    """Apply an event to an active enrollment (as of when: `_timed`)."""
    funnel = version_definition(session, enrollment.version_id)
    found = event_step(funnel, enrollment, event.type, event.properties, event.occurred_at, view)
    _take(session, enrollment, funnel, found, "event", event)


def _take(
    session: Session,
    enrollment: Enrollment,
    funnel: FunnelDef,
    found: tuple[machine.Step, datetime] | None,
    reason: str,
    event: Event | None,
) -> None:
    """Exit or move the enrollment as `found` says (None: nothing)."""
    if found is None:
        return
    step, at = found
    if isinstance(step, machine.ExitGoal):
        exit_enrollment(session, enrollment, step.label, at, event=event)
    else:
        enter_stage(session, enrollment, funnel, step.to, at, reason=reason, event=event)


def event_step(
    funnel: FunnelDef,
    enrollment: EnrollmentState,
    event_type: str,
    properties: Mapping[str, Any],
    occurred_at: datetime,
    view: Mapping[str, Any],
) -> tuple[machine.Step, datetime] | None:
    """What an event does to an active enrollment, and as of when; None: nothing."""
    if occurred_at < enrollment.enrolled_at:
        return None
    step = machine.on_event(funnel, enrollment.stage_key, event_type, properties, view)
    return _timed(enrollment, step, occurred_at)


def _timed(
    enrollment: EnrollmentState, step: machine.Step | None, at: datetime
) -> tuple[machine.Step, datetime] | None:
    """A step taken by something that happened at `at` (since the enrollment began),
    and as of when; None: nothing. Exit goals count for anything since enrollment (a
    late conversion still converts); a transition counts only for what happened while
    the contact was in the current stage, so a late event cannot skip a stage."""
    if isinstance(step, machine.ExitGoal):
        return step, max(at, enrollment.stage_entered_at)
    if isinstance(step, machine.Move) and at >= enrollment.stage_entered_at:
        return step, at
    return None


def enter_stage(
    session: Session,
    enrollment: Enrollment,
    funnel: FunnelDef,
    stage_key: str,
    at: datetime,
    *,
    reason: str,
    event: Event | None = None,
) -> None:
    """Rule 1: leave the current stage (cancelling its unsent email), enter `stage_key`
    at `at`, and schedule its emails relative to `at`."""
    previous = enrollment.stage_key
    _cancel_unsent(session, enrollment, leaving(previous, stage_key))
    step_into(enrollment, funnel, stage_key, at, event.id if event else None)
    _arrive(session, enrollment, funnel, previous, at, reason, event)


def leaving(previous: str, stage_key: str) -> str:
    """Why a stage's unsent emails are cancelled when the contact moves on."""
    return f"left stage '{previous}' for '{stage_key}'"


def exiting(label: str) -> str:
    """Why a funnel's unsent emails are cancelled when the contact exits."""
    return f"exited the funnel ({label})"


def step_into(
    enrollment: EnrollmentState,
    funnel: FunnelDef,
    stage_key: str,
    at: datetime,
    event_id: int | None,
) -> None:
    """The enrollment's own columns on entering `stage_key` at `at` (`event_id`: the
    event that brought it there; None for a timeout, a segment or a publish)."""
    enrollment.stage_key = stage_key
    enrollment.stage_entered_at = at
    enrollment.visit += 1
    enrollment.timeout_at = machine.timeout_at(funnel, stage_key, at)
    if event_id is not None:
        enrollment.stage_event_id = event_id


def close(enrollment: EnrollmentState, label: str, at: datetime) -> None:
    """The enrollment's own columns on exiting with `label` at `at`."""
    enrollment.status = "exited"
    enrollment.exit_label = label
    enrollment.exited_at = at
    enrollment.timeout_at = None


def _arrive(
    session: Session,
    enrollment: Enrollment,
    funnel: FunnelDef,
    previous: str | None,
    at: datetime,
    reason: str,
    event: Event | None,
) -> None:
    """Record the move and schedule the stage's emails for this visit."""
    event_id = event.id if event else None
    session.add(
        StageMove(**move_row(enrollment, at, previous, enrollment.stage_key, reason, event_id))
    )
    session.add_all(Message(**row) for row in message_rows(enrollment, funnel, at))


def message_rows(
    enrollment: EnrollmentState, funnel: FunnelDef, at: datetime
) -> list[dict[str, Any]]:
    """The emails of the enrollment's current stage visit, entered at `at`, as rows."""
    stage_key = enrollment.stage_key
    return [
        {
            "enrollment_id": enrollment.id,
            "contact_id": enrollment.contact_id,
            "funnel_id": enrollment.funnel_id,
            "version_id": enrollment.version_id,
            "stage_key": stage_key,
            "visit": enrollment.visit,
            "step": step,
            "template": template,
            "priority": funnel.priority,
            "event_id": enrollment.stage_event_id,
            "status": "scheduled",
            "due_at": due,
            "created_at": at,
            "reason": None,
        }
        for step, template, due in machine.schedule(funnel, stage_key, at)
    ]


def exit_enrollment(
    session: Session,
    enrollment: Enrollment,
    label: str,
    at: datetime,
    *,
    event: Event | None = None,
) -> None:
    """End an enrollment with `label`; nothing more of this funnel is sent."""
    _cancel_unsent(session, enrollment, exiting(label))
    event_id = event.id if event else None
    row = move_row(enrollment, at, enrollment.stage_key, None, "exit", event_id, label=label)
    session.add(StageMove(**row))
    close(enrollment, label, at)
    session.flush()


def _cancel_unsent(session: Session, enrollment: Enrollment, why: str) -> None:
    session.execute(
        update(Message)
        .where(Message.enrollment_id == enrollment.id, Message.status.in_(WAITING))
        .values(status="cancelled", reason=why)
        .execution_options(synchronize_session=False)
    )


def move_row(
    enrollment: EnrollmentState,
    at: datetime,
    from_stage: str | None,
    to_stage: str | None,
    reason: str,
    event_id: int | None,
    label: str | None = None,
) -> dict[str, Any]:
    """A stage move of the enrollment, as a row."""
    return {
        "enrollment_id": enrollment.id,
        "contact_id": enrollment.contact_id,
        "funnel_id": enrollment.funnel_id,
        "version_id": enrollment.version_id,
        "at": at,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "reason": reason,
        "label": label,
        "event_id": event_id,
    }


def fire_timeout(session: Session, enrollment: Enrollment) -> None:
    """Fire an enrollment's due time-based transition, as of when it was due."""
    funnel = version_definition(session, enrollment.version_id)
    move = machine.on_timeout(funnel, enrollment.stage_key)
    due = enrollment.timeout_at
    if move is None or due is None:
        enrollment.timeout_at = None
        return
    enter_stage(session, enrollment, funnel, move.to, due, reason="timeout")
