"""The preference centre's choices: which topics a recipient sees, which frequencies
they may pick, and saving what they chose (through the ledgered consent setters)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.delivery.transport import Transport
from app.models import Contact
from app.services import contacts as contacts_svc
from app.services import optin
from app.services.funnels import live_funnels
from app.settings import EngineSettings

# The recipient's own cap (GLOBAL_CAPS syntax); None means only the sender's caps apply.
FREQUENCIES: tuple[str | None, ...] = (None, "1/1d", "1/7d", "1/30d")
ON = ("subscribed", "pending")


@dataclass(frozen=True)
class TopicChoice:
    topic: str
    state: str | None
    funnels: tuple[str, ...]  # names of the live funnels that mail on this topic

    @property
    def on(self) -> bool:
        return self.state in ON


@dataclass(frozen=True)
class Saved:
    changed: bool
    pending: tuple[str, ...]  # topics switched on that wait for their confirmation link


class InvalidChoice(ValueError):
    """The form asked for something the page did not offer."""


def topic_choices(session: Session, contact: Contact) -> list[TopicChoice]:
    """Every topic a live funnel mails on, plus the contact's own topics, by name."""
    funnels: dict[str, list[str]] = {}
    for live in live_funnels(session):
        funnels.setdefault(live.definition.topic, []).append(live.definition.name)
    for sub in contact.subscriptions:
        funnels.setdefault(sub.topic, [])
    return [
        TopicChoice(topic, contact.topic_status(topic), tuple(names))
        for topic, names in sorted(funnels.items())
    ]


def frequency_choices(contact: Contact) -> tuple[str | None, ...]:
    """The frequencies offered; a value set elsewhere (the API) is kept as a choice."""
    if contact.frequency in FREQUENCIES:
        return FREQUENCIES
    return (*FREQUENCIES, contact.frequency)


def save(
    session: Session,
    contact: Contact,
    *,
    topics_on: Collection[str],
    frequency: str | None,
    now: datetime,
    actor: contacts_svc.Actor,
    settings: EngineSettings,
    transport: Transport,
    double_opt_in: Collection[str],
) -> Saved:
    """Apply the preference form: each topic shown is on if it is in `topics_on`.

    Topics not shown on the page are ignored (a token grants what the page offered).
    Switching on goes through double opt-in where configured; a topic that is off
    and stays off gets no ledger row, so saving an untouched form changes nothing.
    """
    if frequency not in frequency_choices(contact):
        raise InvalidChoice(f"unknown frequency {frequency!r}")
    changed, pending = False, []
    for choice in topic_choices(session, contact):
        wanted = choice.topic in topics_on
        if wanted == choice.on:
            continue
        if wanted:
            state = optin.request(
                session,
                contact,
                choice.topic,
                now,
                actor,
                settings,
                transport=transport,
                double_opt_in=double_opt_in,
            )
            pending += [choice.topic] if state == "pending" else []
        else:
            contacts_svc.set_topic(session, contact, choice.topic, "unsubscribed", now, actor)
        changed = True
    changed = contacts_svc.set_frequency(session, contact, frequency, now, actor) or changed
    return Saved(changed=changed, pending=tuple(pending))
