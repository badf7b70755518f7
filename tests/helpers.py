"""Small verbs that tests use to drive the engine as its callers do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.delivery.render import available
from app.delivery.transport import SmtpSettings, SmtpTransport, Transport
from app.models import Contact, Enrollment, Message
from app.services import contacts as contacts_svc
from app.services import funnels as funnels_svc
from app.services.ingest import ingest_event
from app.settings import EngineSettings
from app.worker import TickReport, tick

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates" / "email"


def publish(sessions: sessionmaker[Session], source: str | Path, now: datetime) -> int:
    """Save and publish a definition (text or file); the funnel id."""
    text = source.read_text() if isinstance(source, Path) else source
    with sessions.begin() as s:
        funnel, version, _ = funnels_svc.save_version(s, text, now, templates=available(TEMPLATES))
        if funnel.live_version_id != version.id:
            funnels_svc.publish(s, funnel, version, now)
        return funnel.id


def subscribe(
    sessions: sessionmaker[Session],
    email: str,
    now: datetime,
    topic: str = "nurture",
    **attributes: Any,
) -> int:
    with sessions.begin() as s:
        contact, _ = contacts_svc.get_or_create(s, email, now)
        contacts_svc.update_attributes(contact, attributes, now)
        contacts_svc.set_topic(
            s, contact, topic, "subscribed", now, contacts_svc.Actor(source="test")
        )
        return contact.id


def event(
    sessions: sessionmaker[Session],
    email: str,
    type: str,
    at: datetime,
    now: datetime | None = None,
    client_id: str | None = None,
    **properties: Any,
) -> bool:
    with sessions.begin() as s:
        return ingest_event(
            s,
            email=email,
            type=type,
            properties=properties,
            occurred_at=at,
            now=now or at,
            client_id=client_id,
        ).created


def run(
    sessions: sessionmaker[Session],
    settings: EngineSettings,
    now: datetime,
    transport: Transport | None = None,
    sink: Any = None,
) -> TickReport:
    """One tick as of `now`, sending to `sink` (an SmtpSink) or `transport`."""
    if transport is None:
        transport = SmtpTransport(SmtpSettings(host=sink.host, port=sink.port, timeout=5))
    return tick(sessions, now, transport, settings, worker="test-worker")


def messages(sessions: sessionmaker[Session], email: str | None = None) -> list[Message]:
    with sessions() as s:
        query = select(Message).order_by(Message.id)
        if email:
            query = query.join(Contact, Contact.id == Message.contact_id).where(
                Contact.email == email
            )
        return list(s.scalars(query))


def enrollment(sessions: sessionmaker[Session], email: str) -> Enrollment | None:
    with sessions() as s:
        return s.scalar(
            select(Enrollment)
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(Contact.email == email)
            .order_by(Enrollment.id.desc())
            .limit(1)
        )
