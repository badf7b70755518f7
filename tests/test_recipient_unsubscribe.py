"""Unsubscribe links: the RFC 8058 one-click POST, the confirmation page, resubscribe."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import tokens
from app.models import ConsentChange, Contact
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import ROOT, event, messages, publish, run, subscribe
from tests.support.smtp import SmtpSink

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
ADA = "ada@example.com"
MONDAY = at("2026-03-02 10:00")  # London is on UTC in early March
ONE_CLICK = "List-Unsubscribe=One-Click"


def unsubscribe_path(app: Flask, contact_id: int, message_id: int | None = None) -> str:
    return "/u/" + tokens.make("unsubscribe", app.config["SECRET_KEY"], contact_id, message_id)


def contact(sessions: sessionmaker[Session], email: str = ADA) -> Contact:
    with sessions() as s:
        found = s.scalar(select(Contact).where(Contact.email == email))
        assert found is not None
        return found


def ledger(sessions: sessionmaker[Session]) -> list[ConsentChange]:
    with sessions() as s:
        return list(s.scalars(select(ConsentChange).order_by(ConsentChange.id)))


def test_it_suppresses_the_next_email_after_a_one_click_post_to_the_sent_header(
    app: Flask, sessions: sessionmaker[Session], settings: EngineSettings, smtp_sink: SmtpSink
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    subscribe(sessions, ADA, MONDAY, timezone="Europe/London")
    event(sessions, ADA, "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    run(sessions, settings, MONDAY, sink=smtp_sink)
    [received] = smtp_sink.wait_for(1)

    header = received.message["List-Unsubscribe"]
    url = urlparse(header.strip().removeprefix("<").removesuffix(">"))
    assert url.netloc == "nurture.test" and url.path.startswith("/u/")
    client = app.test_client(use_cookies=False)
    response = client.post(
        url.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200

    # The video 1 invite is due on Wednesday: it must not go out.
    report = run(sessions, settings, at("2026-03-04 10:00"), sink=smtp_sink)
    invite = {m.template: m for m in messages(sessions, ADA)}["video1-invite"]
    assert invite.status == "suppressed" and invite.reason == "contact is unsubscribed"
    assert report.counts["suppressed"] == 1 and report.counts["sent"] == 0
    assert len(smtp_sink.messages) == 1


def test_it_records_a_one_click_unsubscribe_in_the_ledger(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, ADA, MONDAY)
    client = app.test_client(use_cookies=False)

    client.post(
        unsubscribe_path(app, ada, 42),
        data={"List-Unsubscribe": "One-Click"},
        headers={"User-Agent": "MailProvider-OneClick/1.0"},
    )

    row = ledger(sessions)[-1]
    assert (row.source, row.field, row.topic, row.before, row.after) == (
        "one-click",
        "status",
        None,
        "active",
        "unsubscribed",
    )
    assert (row.ip, row.user_agent, row.message_id) == (
        "127.0.0.1",
        "MailProvider-OneClick/1.0",
        42,
    )
    assert contact(sessions).status == "unsubscribed"


def test_it_shows_a_confirmation_page_on_get_and_changes_nothing(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, ADA, MONDAY)
    before = len(ledger(sessions))

    response = app.test_client().get(unsubscribe_path(app, ada, 7))
    head = app.test_client().head(unsubscribe_path(app, ada, 7))

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and head.status_code == 200
    assert page.count("<form") == 1 and page.count('<button type="submit"') == 1
    assert f'action="{unsubscribe_path(app, ada, 7)}"' in page
    assert len(ledger(sessions)) == before and contact(sessions).status == "active"


def test_it_unsubscribes_from_the_page_button_and_offers_resubscribe_and_preferences(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, ADA, MONDAY)

    response = app.test_client().post(unsubscribe_path(app, ada, 7))

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "You are unsubscribed" in page and "Resubscribe" in page
    assert f'action="{unsubscribe_path(app, ada, 7)}/resubscribe"' in page
    preferences = tokens.make("preferences", app.config["SECRET_KEY"], ada, 7)
    assert f'href="/p/{preferences}"' in page
    assert ledger(sessions)[-1].source == "unsubscribe-page"


def test_it_answers_a_second_post_without_changing_anything(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, ADA, MONDAY)
    client = app.test_client(use_cookies=False)
    client.post(
        unsubscribe_path(app, ada), data=ONE_CLICK, content_type="application/x-www-form-urlencoded"
    )
    rows = len(ledger(sessions))

    again = client.post(
        unsubscribe_path(app, ada), data=ONE_CLICK, content_type="application/x-www-form-urlencoded"
    )

    assert again.status_code == 200
    assert len(ledger(sessions)) == rows


def test_it_resubscribes_and_the_next_email_goes_out(
    app: Flask, sessions: sessionmaker[Session], settings: EngineSettings, smtp_sink: SmtpSink
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    ada = subscribe(sessions, ADA, MONDAY, timezone="Europe/London")
    client = app.test_client()
    client.post(unsubscribe_path(app, ada))

    response = client.post(unsubscribe_path(app, ada) + "/resubscribe")

    assert response.status_code == 200 and "Welcome back" in response.get_data(as_text=True)
    assert contact(sessions).status == "active"
    assert [(r.source, r.after) for r in ledger(sessions)[-2:]] == [
        ("unsubscribe-page", "unsubscribed"),
        ("resubscribe", "active"),
    ]
    event(sessions, ADA, "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    assert run(sessions, settings, MONDAY, sink=smtp_sink).counts["sent"] == 1


def test_it_keeps_a_complaint_rather_than_overwrite_it(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, ADA, MONDAY)
    with sessions.begin() as s:
        found = s.get(Contact, ada)
        assert found is not None
        found.status = "complained"
    rows = len(ledger(sessions))

    client = app.test_client()
    response = client.post(
        unsubscribe_path(app, ada), data=ONE_CLICK, content_type="application/x-www-form-urlencoded"
    )
    resubscribe = client.post(unsubscribe_path(app, ada) + "/resubscribe")

    assert response.status_code == 200 and resubscribe.status_code == 200
    assert "Resubscribe" not in resubscribe.get_data(as_text=True)
    assert contact(sessions).status == "complained" and len(ledger(sessions)) == rows
