"""A contact's timeline for the console: events, stage moves, emails and consent changes,
merged newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ConsentChange, Contact, Event, Funnel, Message, StageMove

# Each kind is capped: a contact with years of history still gets a page that loads.
LIMIT = 300


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # event | move | email | consent
    title: str
    detail: str = ""
    status: str | None = None  # an email's status, for its badge


def _properties(properties: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in properties.items())


def _events(session: Session, contact_id: int) -> list[Entry]:
    rows = session.scalars(
        select(Event)
        .where(Event.contact_id == contact_id)
        .order_by(Event.occurred_at.desc())
        .limit(LIMIT)
    )
    return [
        Entry(
            e.occurred_at,
            "event",
            e.type,
            " · ".join(filter(None, [_properties(e.properties or {}), f"via {e.source}"])),
        )
        for e in rows
    ]


def _move_title(move: StageMove, funnel: str) -> tuple[str, str]:
    if move.reason == "entry":
        return f"Entered {funnel} at {move.to_stage}", ""
    if move.reason == "exit":
        return f"Left {funnel}: {move.label or 'exited'}", f"from {move.from_stage}"
    why = {
        "event": "on an event",
        "timeout": "after waiting",
        "publish": "a new version removed the stage",
    }
    return (
        f"Moved to {move.to_stage} in {funnel}",
        f"from {move.from_stage}, {why.get(move.reason, move.reason)}",
    )


def _moves(session: Session, contact_id: int, funnels: dict[int, str]) -> list[Entry]:
    rows = session.scalars(
        select(StageMove)
        .where(StageMove.contact_id == contact_id)
        .order_by(StageMove.at.desc())
        .limit(LIMIT)
    )
    entries = []
    for move in rows:
        title, detail = _move_title(move, funnels.get(move.funnel_id, f"funnel {move.funnel_id}"))
        entries.append(Entry(move.at, "move", title, detail))
    return entries


def _emails(session: Session, contact_id: int, funnels: dict[int, str]) -> list[Entry]:
    rows = session.scalars(
        select(Message)
        .where(Message.contact_id == contact_id)
        .order_by(Message.due_at.desc())
        .limit(LIMIT)
    )
    entries = []
    for m in rows:
        when = m.sent_at or m.due_at
        timing = (
            f"sent {m.sent_at:%Y-%m-%d %H:%M} UTC"
            if m.sent_at
            else f"due {m.due_at:%Y-%m-%d %H:%M} UTC"
        )
        parts = [f"{funnels.get(m.funnel_id, '?')} · {m.stage_key}", timing]
        if m.attempts:
            parts.append(f"{m.attempts} attempt{'s' if m.attempts != 1 else ''}")
        if m.reason:
            parts.append(m.reason)
        entries.append(Entry(when, "email", m.template, " · ".join(parts), status=m.status))
    return entries


def _consent_title(change: ConsentChange) -> str:
    before, after = change.before or "not set", change.after or "not set"
    if change.field == "topic":
        return f"Topic {change.topic}: {before} → {after}"
    if change.field == "frequency":
        return f"Frequency: {before} → {after}"
    return f"Consent status: {before} → {after}"


def _consents(session: Session, contact_id: int) -> list[Entry]:
    rows = session.scalars(
        select(ConsentChange)
        .where(ConsentChange.contact_id == contact_id)
        .order_by(ConsentChange.at.desc(), ConsentChange.id.desc())
        .limit(LIMIT)
    )
    entries = []
    for c in rows:
        who = " · ".join(
            filter(
                None, [f"source {c.source}", c.actor and f"by {c.actor}", c.ip and f"from {c.ip}"]
            )
        )
        entries.append(Entry(c.at, "consent", _consent_title(c), who))
    return entries


def timeline(session: Session, contact: Contact) -> list[Entry]:
    """Everything that happened to `contact`, newest first."""
    funnels = dict(session.execute(select(Funnel.id, Funnel.key)).all())
    entries = (
        _events(session, contact.id)
        + _moves(session, contact.id, funnels)
        + _emails(session, contact.id, funnels)
        + _consents(session, contact.id)
    )
    # Within one instant a cause (the event) comes before its effects (move, email), so
    # newest first shows the effects above it.
    rank = {"event": 0, "move": 1, "email": 2, "consent": 3}
    return sorted(entries, key=lambda e: (e.at, rank[e.kind]), reverse=True)
