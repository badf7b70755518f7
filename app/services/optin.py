"""Double opt-in: a topic that needs confirmation stays `pending` until its link is used.

Which topics need it is configuration (`DOUBLE_OPT_IN_TOPICS`); the others are
subscribed at once. The confirmation email is transactional: it is sent straight
through the transport given, not queued, capped or subject to the topic itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.orm import Session

from app import tokens
from app.delivery.compose import Email, compose, sender_domain
from app.delivery.transport import Transport
from app.models import Contact
from app.services import contacts as contacts_svc
from app.settings import EngineSettings

TEMPLATE = "confirm-subscription"


def needs_confirmation(topic: str, double_opt_in: Collection[str]) -> bool:
    return topic in double_opt_in


def request(
    session: Session,
    contact: Contact,
    topic: str,
    now: datetime,
    actor: contacts_svc.Actor,
    settings: EngineSettings,
    *,
    transport: Transport,
    double_opt_in: Collection[str],
) -> str:
    """Opt `contact` in to `topic`; returns the topic's state afterwards.

    A subscribed topic stays as it is. A topic in `double_opt_in` becomes (or stays)
    pending and a confirmation email goes out, again if one was already asked for
    (the first may have been lost). Any other topic is subscribed at once.
    The email is sent before the caller commits: a TransportError propagates, and a
    caller that rolls back leaves no pending topic without its email.
    """
    state = contact.topic_status(topic)
    if state == "subscribed":
        return state
    if not needs_confirmation(topic, double_opt_in):
        contacts_svc.set_topic(session, contact, topic, "subscribed", now, actor)
        return "subscribed"
    contacts_svc.set_topic(session, contact, topic, "pending", now, actor)
    session.flush()  # a new contact needs its id for the token
    transport.send(confirmation_email(contact, topic, now, settings))
    return "pending"


def confirm(
    session: Session, contact: Contact, topic: str, now: datetime, actor: contacts_svc.Actor
) -> bool:
    """Subscribe a pending topic; True if it changed. A topic that is no longer pending
    (confirmed already, or switched off since) is left alone: an old link must not
    bring back a subscription the recipient has turned off."""
    if contact.topic_status(topic) != "pending":
        return False
    return contacts_svc.set_topic(session, contact, topic, "subscribed", now, actor)


def confirm_url(settings: EngineSettings, contact_id: int, topic: str) -> str:
    token = tokens.make("confirm", settings.secret_key, contact_id, None, extra=topic)
    return f"{settings.public_url}/c/{token}"


def confirmation_email(
    contact: Contact, topic: str, now: datetime, settings: EngineSettings
) -> Email:
    """The confirmation email for `topic`, rendered from templates/email/confirm-subscription."""
    url = confirm_url(settings, contact.id, topic)
    context = {"contact": contacts_svc.render_view(contact), "topic": topic, "confirm_url": url}
    rendered = settings.templates.render(TEMPLATE, context)
    # No List-Unsubscribe: it makes no sense on the answer to a request the recipient
    # just made. Its own Message-ID: there is no message row behind it.
    domain = sender_domain(settings.mail_from)
    return compose(
        rendered,
        to=contact.email,
        mail_from=settings.mail_from,
        message_id=f"<nurture.confirm.{secrets.token_hex(8)}@{domain}>",
        now=now,
    )
