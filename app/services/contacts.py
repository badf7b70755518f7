"""Contacts, their attributes and their consent (with the append-only ledger)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ConsentChange, Contact, Subscription
from app.upsert import insert_ignore

STATUSES = ("active", "unsubscribed", "bounced", "complained")
TOPIC_STATES = ("subscribed", "unsubscribed", "pending")
# Attributes kept in their own columns because the engine reads them.
COLUMN_ATTRIBUTES = ("timezone", "locale")


class InvalidEmail(ValueError):
    """The address is not a valid email; the message says why, in plain words."""


@lru_cache(maxsize=65536)
def normalize_email(raw: str) -> str:
    """The canonical form of an address (email-validator), or InvalidEmail.

    Cached: validation (IDNA, syntax) costs more than the insert it precedes, and
    ingestion and imports see the same addresses again and again."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None


@dataclass(frozen=True)
class Actor:
    """Who made a consent change, for the ledger."""

    source: str
    ip: str | None = None
    user_agent: str | None = None
    actor: str | None = None
    message_id: int | None = None


def find(session: Session, email: str) -> Contact | None:
    return session.scalar(select(Contact).where(Contact.email == normalize_email(email)))


def get_or_create(session: Session, email: str, now: datetime) -> tuple[Contact, bool]:
    """The contact for `email`, creating it if needed; (contact, created).

    A concurrent insert of the same address is absorbed by ON CONFLICT DO NOTHING:
    the loser reads the winner's row instead of failing its transaction.
    """
    address = normalize_email(email)
    contact = session.scalar(select(Contact).where(Contact.email == address))
    if contact is not None:
        return contact, False
    values = {
        "email": address,
        "attributes": {},
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }
    created = insert_ignore(session, Contact, values, ["email"])
    if created is not None:
        return created, True
    existing = session.scalar(select(Contact).where(Contact.email == address))
    assert existing is not None
    return existing, False


def update_attributes(contact: Contact, attributes: Mapping[str, Any], now: datetime) -> None:
    """Merge attributes; `timezone` and `locale` go to their columns, None deletes a key."""
    merged = dict(contact.attributes or {})
    for name, value in attributes.items():
        if name in COLUMN_ATTRIBUTES:
            setattr(contact, name, value or None)
        elif value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    contact.attributes = merged
    contact.updated_at = now


def render_view(contact: Contact) -> dict[str, Any]:
    """The contact as templates and conditions see it: attributes plus the standard
    fields, which are always present (None when unknown) so templates can test them."""
    view: dict[str, Any] = {"first_name": None, "last_name": None}
    view.update(contact.attributes or {})
    view.update(email=contact.email, timezone=contact.timezone, locale=contact.locale)
    return view


def _ledger(
    session: Session,
    contact: Contact,
    now: datetime,
    actor: Actor,
    *,
    field: str,
    topic: str | None,
    before: str | None,
    after: str | None,
) -> None:
    session.add(
        ConsentChange(
            contact_id=contact.id,
            at=now,
            source=actor.source,
            topic=topic,
            field=field,
            before=before,
            after=after,
            ip=actor.ip,
            user_agent=(actor.user_agent or "")[:512] or None,
            actor=actor.actor,
            message_id=actor.message_id,
        )
    )


def set_status(
    session: Session, contact: Contact, status: str, now: datetime, actor: Actor
) -> bool:
    """Set the global consent status; True if it changed (a ledger row is written)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    if contact.status == status:
        return False
    _ledger(
        session,
        contact,
        now,
        actor,
        field="status",
        topic=None,
        before=contact.status,
        after=status,
    )
    contact.status = status
    contact.updated_at = now
    return True


def set_topic(
    session: Session, contact: Contact, topic: str, state: str, now: datetime, actor: Actor
) -> bool:
    """Set one topic's subscription; True if it changed (a ledger row is written)."""
    if state not in TOPIC_STATES:
        raise ValueError(f"unknown topic state {state!r}: use one of {', '.join(TOPIC_STATES)}")
    sub = next((s for s in contact.subscriptions if s.topic == topic), None)
    before = sub.status if sub else None
    if before == state:
        return False
    _ledger(session, contact, now, actor, field="topic", topic=topic, before=before, after=state)
    if sub is None:
        contact.subscriptions.append(Subscription(topic=topic, status=state, updated_at=now))
    else:
        sub.status = state
        sub.updated_at = now
    contact.updated_at = now
    return True


def set_frequency(
    session: Session, contact: Contact, frequency: str | None, now: datetime, actor: Actor
) -> bool:
    """Set the recipient's own cap (GLOBAL_CAPS syntax, e.g. "1/7d"); None clears it."""
    from app.engine.caps import parse_caps

    if frequency:
        parse_caps(frequency)  # raises ValueError with a plain message
    if contact.frequency == (frequency or None):
        return False
    _ledger(
        session,
        contact,
        now,
        actor,
        field="frequency",
        topic=None,
        before=contact.frequency,
        after=frequency or None,
    )
    contact.frequency = frequency or None
    contact.updated_at = now
    return True


def consent_view(contact: Contact) -> dict[str, Any]:
    return {
        "status": contact.status,
        "topics": {s.topic: s.status for s in sorted(contact.subscriptions, key=lambda s: s.topic)},
        "frequency": contact.frequency,
    }


def rebuild_consent(session: Session, contact_id: int) -> dict[str, Any]:
    """The contact's consent replayed from the ledger alone, in consent_view's shape.

    Replays in insertion order (id), which is the order the changes were made: each
    row's `before` is the state the previous rows left. A contact starts active, with
    no topics and no frequency (the model's defaults).
    """
    status, frequency = "active", None
    topics: dict[str, str] = {}
    query = select(ConsentChange).where(ConsentChange.contact_id == contact_id)
    rows = session.scalars(query.order_by(ConsentChange.id))
    for row in rows:
        if row.field == "status":
            status = row.after or status
        elif row.field == "frequency":
            frequency = row.after
        elif row.topic is not None and row.after is not None:
            topics[row.topic] = row.after
        elif row.topic is not None:
            topics.pop(row.topic, None)
    return {"status": status, "topics": dict(sorted(topics.items())), "frequency": frequency}
