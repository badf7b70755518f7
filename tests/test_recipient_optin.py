"""Double opt-in: a configured topic stays pending until the emailed link is confirmed."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import urlparse

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import tokens
from app.delivery.compose import Email
from app.delivery.transport import MemoryTransport
from app.models import ConsentChange, Contact
from app.services import contacts as contacts_svc
from app.services import optin
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import ROOT, event, messages, publish, run, subscribe
from tests.support.smtp import SmtpSink

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
ADA = "ada@example.com"
MONDAY = at("2026-03-02 10:00")
API = contacts_svc.Actor(source="api", ip="10.0.0.1")


def request(
    sessions: sessionmaker[Session],
    settings: EngineSettings,
    topic: str,
    transport: MemoryTransport,
    double_opt_in: tuple[str, ...] = ("newsletter",),
) -> str:
    """optin.request as the API will call it, for Ada (created if needed)."""
    with sessions.begin() as s:
        contact, _ = contacts_svc.get_or_create(s, ADA, MONDAY)
        contacts_svc.update_attributes(contact, {"first_name": "Ada"}, MONDAY)
        return optin.request(
            s,
            contact,
            topic,
            MONDAY,
            API,
            settings,
            transport=transport,
            double_opt_in=double_opt_in,
        )


def topics(sessions: sessionmaker[Session], email: str = ADA) -> dict[str, str]:
    with sessions() as s:
        found = s.scalar(select(Contact).where(Contact.email == email))
        assert found is not None
        return contacts_svc.consent_view(found)["topics"]


def ledger(sessions: sessionmaker[Session]) -> list[ConsentChange]:
    with sessions() as s:
        return list(s.scalars(select(ConsentChange).order_by(ConsentChange.id)))


def parsed(sent: Email) -> EmailMessage:
    """A sent message as a mail client reads it."""
    message = message_from_bytes(sent.raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def plain(sent: Email) -> str:
    part = parsed(sent).get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def confirm_path(text: str) -> str:
    match = re.search(r"http://nurture\.test/c/\S+", text)
    assert match, text
    return urlparse(match.group(0)).path


def test_it_keeps_a_double_opt_in_topic_pending_and_emails_the_link(
    sessions: sessionmaker[Session], settings: EngineSettings
) -> None:
    transport = MemoryTransport()

    assert request(sessions, settings, "newsletter", transport) == "pending"

    assert topics(sessions) == {"newsletter": "pending"}
    [sent] = transport.sent
    email = parsed(sent)
    assert (
        email["To"] == ADA and email["Subject"] == 'Please confirm your "newsletter" subscription'
    )
    assert email["List-Unsubscribe"] is None and email["Message-ID"].startswith("<nurture.confirm")
    body = plain(sent)
    assert body.startswith("Hi Ada,")
    assert (ledger(sessions)[-1].source, ledger(sessions)[-1].after) == ("api", "pending")
    assert confirm_path(body).startswith("/c/")


def test_it_subscribes_other_topics_at_once_without_email(
    sessions: sessionmaker[Session], settings: EngineSettings
) -> None:
    transport = MemoryTransport()

    assert request(sessions, settings, "nurture", transport) == "subscribed"

    assert topics(sessions) == {"nurture": "subscribed"} and transport.sent == []


def test_it_leaves_a_subscribed_topic_alone(
    sessions: sessionmaker[Session], settings: EngineSettings
) -> None:
    subscribe(sessions, ADA, MONDAY, topic="newsletter")
    transport = MemoryTransport()
    rows = len(ledger(sessions))

    assert request(sessions, settings, "newsletter", transport) == "subscribed"

    assert transport.sent == [] and len(ledger(sessions)) == rows


def test_it_resends_the_link_when_asked_again(
    sessions: sessionmaker[Session], settings: EngineSettings
) -> None:
    transport = MemoryTransport()
    request(sessions, settings, "newsletter", transport)

    request(sessions, settings, "newsletter", transport)

    assert len(transport.sent) == 2 and topics(sessions) == {"newsletter": "pending"}


def test_it_confirms_on_post_only(
    app: Flask, sessions: sessionmaker[Session], settings: EngineSettings
) -> None:
    transport = MemoryTransport()
    request(sessions, settings, "newsletter", transport)
    link = confirm_path(plain(transport.sent[0]))
    rows = len(ledger(sessions))
    client = app.test_client()

    page = client.get(link)
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    assert topics(sessions) == {"newsletter": "pending"} and len(ledger(sessions)) == rows

    done = client.post(link, headers={"User-Agent": "Phone/2.0"})
    assert done.status_code == 200 and "You are subscribed" in done.get_data(as_text=True)
    assert topics(sessions) == {"newsletter": "subscribed"}
    row = ledger(sessions)[-1]
    assert (row.source, row.before, row.after, row.user_agent) == (
        "double-opt-in",
        "pending",
        "subscribed",
        "Phone/2.0",
    )

    again = client.post(link)
    assert "Already confirmed" in again.get_data(as_text=True) and len(ledger(sessions)) == rows + 1


def test_it_does_not_bring_back_a_topic_switched_off_since(
    app: Flask, sessions: sessionmaker[Session], settings: EngineSettings
) -> None:
    transport = MemoryTransport()
    request(sessions, settings, "newsletter", transport)
    link = confirm_path(plain(transport.sent[0]))
    with sessions.begin() as s:
        contact = contacts_svc.find(s, ADA)
        assert contact is not None
        contacts_svc.set_topic(s, contact, "newsletter", "unsubscribed", MONDAY, API)

    response = app.test_client().post(link)

    assert "This link is no longer valid" in response.get_data(as_text=True)
    assert topics(sessions) == {"newsletter": "unsubscribed"}


def test_it_never_mails_a_pending_topic(
    sessions: sessionmaker[Session], settings: EngineSettings, smtp_sink: SmtpSink
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    request(sessions, settings, "nurture", MemoryTransport(), double_opt_in=("nurture",))

    event(sessions, ADA, "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    run(sessions, settings, MONDAY, sink=smtp_sink)

    assert messages(sessions, ADA)[0].status == "suppressed"
    assert smtp_sink.messages == []


@pytest.fixture
def double_opt_in_app(app: Flask, smtp_sink: SmtpSink) -> Flask:
    """The app with the nurture topic under double opt-in, mailing to the sink."""
    app.config.update(
        DOUBLE_OPT_IN_TOPICS=["nurture"], SMTP_HOST=smtp_sink.host, SMTP_PORT=smtp_sink.port
    )
    return app


def test_it_confirms_a_topic_switched_on_in_the_preference_centre(
    double_opt_in_app: Flask,
    sessions: sessionmaker[Session],
    settings: EngineSettings,
    smtp_sink: SmtpSink,
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    ada = subscribe(sessions, ADA, MONDAY, topic="newsletter", timezone="Europe/London")
    client = double_opt_in_app.test_client()
    preferences = "/p/" + tokens.make("preferences", double_opt_in_app.config["SECRET_KEY"], ada)

    saved = client.post(preferences, data={"topic": ["newsletter", "nurture"], "frequency": "none"})

    assert "We sent you an email to confirm “nurture”" in saved.get_data(as_text=True)
    assert topics(sessions) == {"newsletter": "subscribed", "nurture": "pending"}
    [received] = smtp_sink.wait_for(1)
    client.post(confirm_path(received.text))
    assert topics(sessions)["nurture"] == "subscribed"
    event(sessions, ADA, "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    assert run(sessions, settings, MONDAY, sink=smtp_sink).counts["sent"] == 1


def test_it_changes_nothing_when_the_confirmation_cannot_be_sent(
    double_opt_in_app: Flask, sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    ada = subscribe(sessions, ADA, MONDAY, topic="newsletter")
    smtp_sink.reply_rcpt(ADA, "451 4.3.0 Try again later")
    rows = len(ledger(sessions))
    preferences = "/p/" + tokens.make("preferences", double_opt_in_app.config["SECRET_KEY"], ada)

    response = double_opt_in_app.test_client().post(
        preferences, data={"topic": ["nurture"], "frequency": "1/7d"}
    )

    assert response.status_code == 503
    assert "could not send the confirmation email" in response.get_data(as_text=True)
    assert topics(sessions) == {"newsletter": "subscribed"} and len(ledger(sessions)) == rows
