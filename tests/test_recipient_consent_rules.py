"""Rule 2 at send time: unsubscribed, bounced and complained contacts, and topics that
are off, pending or never chosen, are never mailed."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.services import contacts as contacts_svc
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import ROOT, event, messages, publish, run, subscribe
from tests.support.smtp import SmtpSink

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
ADA = "ada@example.com"
MONDAY = at("2026-03-02 10:00")
OPERATOR = contacts_svc.Actor(source="console", actor="ops@nurture.test")


def welcome(sessions: sessionmaker[Session], settings: EngineSettings, sink: SmtpSink) -> str:
    """Ada downloads the eBook; the status of the welcome email after a tick."""
    event(sessions, ADA, "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    run(sessions, settings, MONDAY, sink=sink)
    return messages(sessions, ADA)[0].status


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
def test_it_never_mails_a_contact_who_is_not_active(
    sessions: sessionmaker[Session], settings: EngineSettings, smtp_sink: SmtpSink, status: str
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    subscribe(sessions, ADA, MONDAY)
    with sessions.begin() as s:
        contact = contacts_svc.find(s, ADA)
        assert contact is not None
        contacts_svc.set_status(s, contact, status, MONDAY, OPERATOR)

    assert welcome(sessions, settings, smtp_sink) == "suppressed"
    assert smtp_sink.messages == []


@pytest.mark.parametrize("state", ["unsubscribed", "pending", None])
def test_it_never_mails_a_topic_that_is_not_subscribed(
    sessions: sessionmaker[Session],
    settings: EngineSettings,
    smtp_sink: SmtpSink,
    state: str | None,
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    subscribe(sessions, ADA, MONDAY, topic="newsletter")  # another topic is not enough
    if state is not None:
        with sessions.begin() as s:
            contact = contacts_svc.find(s, ADA)
            assert contact is not None
            contacts_svc.set_topic(s, contact, "nurture", state, MONDAY, OPERATOR)

    assert welcome(sessions, settings, smtp_sink) == "suppressed"
    assert smtp_sink.messages == []


def test_it_mails_an_active_contact_subscribed_to_the_topic(
    sessions: sessionmaker[Session], settings: EngineSettings, smtp_sink: SmtpSink
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    subscribe(sessions, ADA, MONDAY)

    assert welcome(sessions, settings, smtp_sink) == "sent"
    assert len(smtp_sink.wait_for(1)) == 1
