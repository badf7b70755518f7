"""The worker's tick: the only place that claims, decides, sends and records.

One tick, as of `now`:
1. messages left in `sending` by a crashed worker are settled (policy: `unknown`);
2. due time-based transitions fire (as of when they were due);
2b. contacts whose segments are due (a time-based condition came due, or they
   changed outside an event) are brought up to date; funnels react to the joins;
3. due messages are claimed in batches; for each, in one transaction with the
   contact locked: consent, caps and the send window are checked and the message
   is marked `sending` (or deferred, suppressed, skipped, failed);
4. the batch is sent over one connection, and the outcomes are recorded.

Never twice (rule 4): the `sending` mark is committed before the SMTP exchange,
so a crash after it leaves a message that is never claimed again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from app import queries, tokens
from app.db import begin_write
from app.delivery.compose import Email, compose, message_id
from app.delivery.render import TemplateProblem
from app.delivery.transport import Transport
from app.engine import retry
from app.engine.caps import check_caps, parse_caps
from app.engine.errors import TransportError
from app.engine.model import Cap, FunnelDef
from app.engine.schedule import earliest_send
from app.engine.window import window_zone
from app.models import Contact, Event, Message, MessageAttempt
from app.services import contacts as contacts_svc
from app.services import segment_membership
from app.services.funnels import version_definition
from app.services.ingest import fire_timeout
from app.settings import EngineSettings

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass
class _Outgoing:
    message_id: int
    contact_id: int
    email: Email
    attempts: int
    first_attempt_at: datetime


def tick(
    sessions: sessionmaker[Session],
    now: datetime,
    transport: Transport,
    settings: EngineSettings,
    *,
    worker: str = "worker",
    stop: object = None,
) -> TickReport:
    """Run one tick as of `now`; returns what it did. `stop` (an object with
    `is_set()`) ends the tick between batches, for a graceful shutdown."""
    report = TickReport()
    # One batch is on the wire while the next is claimed and composed: the main thread
    # works while the SMTP sessions wait on the server. Each batch's `sending` mark is
    # committed before its delivery starts, so rule 4 holds as before.
    pipeline = ThreadPoolExecutor(1, "deliver")
    in_flight: tuple[list[_Outgoing], Future[list[TransportError | None]]] | None = None
    try:
        _recover(sessions, now, settings, report)
        _fire_timeouts(sessions, now, settings, report)
        # Before sending: a contact who joins a segment now may enter a funnel whose
        # first email is due at once.
        report.add("segments", segment_membership.refresh(sessions, now, batch=settings.batch))
        while not (stop is not None and stop.is_set()):  # type: ignore[attr-defined]
            outgoing = _claim_batch(sessions, now, settings, worker, report)
            if in_flight is not None:
                _record(sessions, now, settings, worker, *_landed(in_flight), report)
                in_flight = None
            if outgoing is None:
                break
            emails = [out.email for out in outgoing]
            in_flight = (outgoing, pipeline.submit(transport.send_all, emails))
    finally:
        try:
            if in_flight is not None:  # the claim of the next batch failed: settle this one
                _record(sessions, now, settings, worker, *_landed(in_flight), report)
        finally:
            pipeline.shutdown()
            transport.close()
    return report


def _landed(
    in_flight: tuple[list[_Outgoing], Future[list[TransportError | None]]],
) -> tuple[list[_Outgoing], list[TransportError | None]]:
    outgoing, delivery = in_flight
    return outgoing, delivery.result()


def _recover(
    sessions: sessionmaker[Session], now: datetime, settings: EngineSettings, report: TickReport
) -> None:
    with sessions.begin() as s:
        begin_write(s)
        for message in queries.stale_sending(s, now - settings.sending_lease, 10_000):
            if settings.recovery == "resend":
                message.status, message.due_at = "scheduled", now
                message.reason = "resent: the worker that claimed it stopped before confirming"
            else:
                message.status = "unknown"
                message.reason = "the worker stopped between sending and confirming; not resent"
            s.add(
                MessageAttempt(
                    message_id=message.id,
                    at=now,
                    outcome="unknown",
                    worker=message.claimed_by,
                    detail="claim expired without a confirmed outcome",
                )
            )
            report.add("recovered")


def _fire_timeouts(
    sessions: sessionmaker[Session], now: datetime, settings: EngineSettings, report: TickReport
) -> None:
    # A timeout may lead to a stage whose own timeout is also past due; loop until none is.
    while True:
        with sessions.begin() as s:
            begin_write(s)
            due = queries.claim_due_timeouts(s, now, settings.batch)
            for enrollment in due:
                fire_timeout(s, enrollment)
            report.add("timeouts", len(due))
        if not due:
            return


def _claim_batch(
    sessions: sessionmaker[Session],
    now: datetime,
    settings: EngineSettings,
    worker: str,
    report: TickReport,
) -> list[_Outgoing] | None:
    """Claim and decide one batch; the messages to send, or None when nothing is due."""
    with sessions.begin() as s, settings.templates.batch():
        begin_write(s)
        messages = queries.claim_due(s, now, settings.batch)
        if not messages:
            return None
        contacts = queries.lock_contacts(s, {m.contact_id for m in messages})
        sends = queries.recent_sends(
            s, set(contacts), now - _cap_horizon(s, messages, contacts, settings)
        )
        events = _events(s, {m.event_id for m in messages if m.event_id})
        outgoing = []
        for message in messages:
            out = _decide(
                s,
                message,
                contacts[message.contact_id],
                sends,
                events,
                now,
                settings,
                worker,
                report,
            )
            if out is not None:
                outgoing.append(out)
        return outgoing


def _cap_horizon(
    s: Session, messages: Sequence[Message], contacts: dict[int, Contact], settings: EngineSettings
) -> timedelta:
    """How far back the caps of this batch look: the longest window that may apply."""
    windows = [c.per for c in settings.global_caps]
    for message in messages:
        windows += [c.per for c in version_definition(s, message.version_id).caps]
    for contact in contacts.values():
        windows += [c.per for c in _frequency(contact)]
    return max(windows, default=timedelta(0))


def _events(s: Session, ids: set[int]) -> dict[int, Event]:
    if not ids:
        return {}
    return {e.id: e for e in s.scalars(select(Event).where(Event.id.in_(ids)))}


def _consent_problem(contact: Contact, topic: str) -> str | None:
    if contact.status != "active":
        return f"contact is {contact.status}"
    state = contact.topic_status(topic)
    if state != "subscribed":
        return f"not subscribed to topic '{topic}'" + (f" ({state})" if state else "")
    return None


def _frequency(contact: Contact) -> tuple[Cap, ...]:
    """The recipient's own cap; an unreadable one (set outside the app) is ignored."""
    if not contact.frequency:
        return ()
    try:
        return parse_caps(contact.frequency)
    except ValueError:
        log.warning("contact %s has an unreadable frequency %r", contact.id, contact.frequency)
        return ()


def _caps(contact: Contact, funnel: FunnelDef, settings: EngineSettings) -> list[Cap]:
    """Global, funnel and recipient caps together: the strictest binds."""
    return [*settings.global_caps, *funnel.caps, *_frequency(contact)]


def _decide(
    s: Session,
    message: Message,
    contact: Contact,
    sends: dict[int, list[datetime]],
    events: dict[int, Event],
    now: datetime,
    settings: EngineSettings,
    worker: str,
    report: TickReport,
) -> _Outgoing | None:
    """Rules 2, 3 and 6 for one claimed message; the email to send, or None."""
    funnel = version_definition(s, message.version_id)
    problem = _consent_problem(contact, funnel.topic)
    if problem:
        message.status, message.reason = "suppressed", problem
        report.add("suppressed")
        return None
    caps = _caps(contact, funnel, settings)
    sent = sends.setdefault(contact.id, [])
    capped = not check_caps(caps, sent, now).allowed
    if capped and funnel.on_cap == "skip":
        message.status, message.reason = (
            "skipped",
            "a frequency cap was reached and this funnel skips capped email",
        )
        report.add("skipped")
        return None
    tz = window_zone(funnel.send_window, contact.timezone) if funnel.send_window else None
    decision = earliest_send(now, caps, sent, funnel.send_window, tz)
    if decision.at > now:
        message.status, message.due_at, message.reason = "deferred", decision.at, decision.reason
        report.add("deferred")
        report.add("capped" if capped else "outside_window")
        return None
    try:
        email = _compose(message, contact, funnel, events.get(message.event_id or 0), now, settings)
    except TemplateProblem as exc:
        message.status, message.reason = "failed", str(exc)
        report.add("failed")
        return None
    message.status, message.claimed_at, message.claimed_by, message.sent_at = (
        "sending",
        now,
        worker,
        now,
    )
    message.attempts += 1
    message.first_attempt_at = message.first_attempt_at or now
    message.reason = None
    sent.append(now)
    return _Outgoing(message.id, contact.id, email, message.attempts, message.first_attempt_at)


def _compose(
    message: Message,
    contact: Contact,
    funnel: FunnelDef,
    event: Event | None,
    now: datetime,
    settings: EngineSettings,
) -> Email:
    key = settings.secret_key

    def link(kind: str, path: str) -> str:
        token = tokens.make(kind, key, contact.id, message.id)
        return f"{settings.public_url}/{path}/{token}"

    unsubscribe, preferences = link("unsubscribe", "u"), link("preferences", "p")
    context = {
        "contact": contacts_svc.render_view(contact),
        "event": {"type": event.type, "properties": event.properties}
        if event
        else {"type": None, "properties": {}},
        "funnel": {"key": funnel.key, "name": funnel.name},
        "stage": {"key": message.stage_key},
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences,
    }
    rendered = settings.templates.render(message.template, context)
    if funnel.tracking:
        from app.delivery.tracking import instrument  # (kept local: only this function changed)

        rendered = instrument(
            rendered,
            public_url=settings.public_url,
            secret_key=key,
            contact_id=contact.id,
            message_id=message.id,
        )
    return compose(
        rendered,
        to=contact.email,
        mail_from=settings.mail_from,
        message_id=message_id(message.id, settings.mail_from),
        unsubscribe_url=unsubscribe,
        now=now,
    )


def _record(
    sessions: sessionmaker[Session],
    now: datetime,
    settings: EngineSettings,
    worker: str,
    outgoing: list[_Outgoing],
    results: list[TransportError | None],
    report: TickReport,
) -> None:
    with sessions.begin() as s:
        begin_write(s)
        delivered = [
            out.message_id for out, error in zip(outgoing, results, strict=True) if error is None
        ]
        confirmed = queries.confirm_sent(s, delivered, worker, now)
        if confirmed:  # one multi-row insert: a batch holds hundreds of these
            s.execute(
                insert(MessageAttempt),
                [
                    {"message_id": i, "at": now, "outcome": "sent", "code": 250, "worker": worker}
                    for i in confirmed
                ],
            )
            report.add("sent", len(confirmed))
        for out, error in zip(outgoing, results, strict=True):
            if error is not None:
                _record_failure(s, out, error, now, settings, worker, report)


def _record_failure(
    s: Session,
    out: _Outgoing,
    error: TransportError,
    now: datetime,
    settings: EngineSettings,
    worker: str,
    report: TickReport,
) -> None:
    decision = retry.decide(
        error, out.attempts, out.first_attempt_at, now, give_up_after=settings.retry_give_up
    )
    if decision.status == "retry":
        values = {
            "status": "deferred",
            "due_at": decision.retry_at,
            "sent_at": None,
            "reason": decision.reason,
        }
    else:
        values = {"status": "failed", "sent_at": None, "reason": decision.reason}
    if not queries.confirm(s, out.message_id, worker, **values):
        return
    s.add(
        MessageAttempt(
            message_id=out.message_id,
            at=now,
            outcome=decision.status,
            code=error.code,
            detail=error.message[:1000],
            worker=worker,
        )
    )
    report.add(decision.status)
    if decision.status == "bounced":
        contact = s.get(Contact, out.contact_id)
        if contact is not None:
            actor = contacts_svc.Actor(source="bounce", message_id=out.message_id)
            contacts_svc.set_status(s, contact, "bounced", now, actor)
