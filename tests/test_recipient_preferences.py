"""The preference centre: topics on and off, a frequency the engine obeys, unsubscribe
from all, in the contact's language."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import tokens
from app.models import ConsentChange, Contact
from app.services import contacts as contacts_svc
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import ROOT, event, messages, publish, run, subscribe
from tests.support.smtp import SmtpSink

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
ADA = "ada@example.com"
MONDAY = at("2026-03-02 10:00")


def path(app: Flask, contact_id: int) -> str:
    return "/p/" + tokens.make("preferences", app.config["SECRET_KEY"], contact_id, 3)


def consent(sessions: sessionmaker[Session], contact_id: int) -> dict[str, Any]:
    with sessions() as s:
        found = s.get(Contact, contact_id)
        assert found is not None
        return contacts_svc.consent_view(found)


def ledger(sessions: sessionmaker[Session]) -> list[ConsentChange]:
    with sessions() as s:
        return list(s.scalars(select(ConsentChange).order_by(ConsentChange.id)))


@pytest.fixture
def ada(sessions: sessionmaker[Session]) -> int:
    """Ada reads the nurture funnel and also gets a newsletter no funnel uses yet."""
    publish(sessions, FUNNEL, MONDAY)
    contact_id = subscribe(sessions, ADA, MONDAY, timezone="Europe/London")
    subscribe(sessions, ADA, MONDAY, topic="newsletter")
    return contact_id


def test_it_shows_live_funnel_topics_the_contacts_own_topics_and_the_frequencies(
    app: Flask, ada: int
) -> None:
    page = app.test_client().get(path(app, ada)).get_data(as_text=True)

    assert 'name="topic" value="nurture" checked' in page
    assert 'name="topic" value="newsletter" checked' in page
    assert "From eBook to demo" in page  # the funnel that mails on the topic
    for value in ("none", "1/1d", "1/7d", "1/30d"):
        assert f'name="frequency" value="{value}"' in page
    assert 'value="none" checked' in page
    assert "At most one email a week" in page and 'value="unsubscribe"' in page


def test_it_switches_a_topic_off_and_sets_a_frequency(
    app: Flask, sessions: sessionmaker[Session], ada: int
) -> None:
    response = app.test_client().post(
        path(app, ada),
        data={"topic": ["nurture"], "frequency": "1/7d", "action": "save"},
        headers={"User-Agent": "Phone/1.0"},
    )

    assert response.status_code == 200 and "Your choices are saved." in response.get_data(
        as_text=True
    )
    assert consent(sessions, ada) == {
        "status": "active",
        "topics": {"newsletter": "unsubscribed", "nurture": "subscribed"},
        "frequency": "1/7d",
    }
    rows = ledger(sessions)[-2:]
    assert [(r.field, r.topic, r.before, r.after) for r in rows] == [
        ("topic", "newsletter", "subscribed", "unsubscribed"),
        ("frequency", None, None, "1/7d"),
    ]
    assert {(r.source, r.ip, r.user_agent, r.message_id) for r in rows} == {
        ("preference-centre", "127.0.0.1", "Phone/1.0", 3)
    }


def test_it_switches_a_topic_back_on(app: Flask, sessions: sessionmaker[Session], ada: int) -> None:
    client = app.test_client()
    client.post(path(app, ada), data={"topic": ["nurture"], "frequency": "none"})

    client.post(path(app, ada), data={"topic": ["nurture", "newsletter"], "frequency": "none"})

    assert consent(sessions, ada)["topics"] == {"newsletter": "subscribed", "nurture": "subscribed"}


def test_it_writes_nothing_when_the_form_is_saved_unchanged(
    app: Flask, sessions: sessionmaker[Session], ada: int
) -> None:
    rows = len(ledger(sessions))

    app.test_client().post(
        path(app, ada), data={"topic": ["nurture", "newsletter"], "frequency": "none"}
    )

    assert len(ledger(sessions)) == rows


def test_it_ignores_topics_the_page_did_not_offer(
    app: Flask, sessions: sessionmaker[Session], ada: int
) -> None:
    app.test_client().post(
        path(app, ada), data={"topic": ["nurture", "newsletter", "vip-offers"], "frequency": "none"}
    )

    assert "vip-offers" not in consent(sessions, ada)["topics"]


def test_it_refuses_a_frequency_it_did_not_offer(
    app: Flask, sessions: sessionmaker[Session], ada: int
) -> None:
    rows = len(ledger(sessions))

    response = app.test_client().post(path(app, ada), data={"topic": [], "frequency": "100/1m"})

    assert response.status_code == 400
    assert "That choice is not available" in response.get_data(as_text=True)
    assert (
        len(ledger(sessions)) == rows
        and consent(sessions, ada)["topics"]["nurture"] == "subscribed"
    )


def test_it_keeps_a_frequency_set_elsewhere_as_a_choice(
    app: Flask, sessions: sessionmaker[Session], ada: int
) -> None:
    with sessions.begin() as s:
        found = s.get(Contact, ada)
        assert found is not None
        contacts_svc.set_frequency(s, found, "3/7d", MONDAY, contacts_svc.Actor(source="api"))

    page = app.test_client().get(path(app, ada)).get_data(as_text=True)

    assert 'value="3/7d" checked' in page and "Your own setting (3/7d)" in page


def test_it_unsubscribes_from_all_and_resubscribes(
    app: Flask, sessions: sessionmaker[Session], ada: int
) -> None:
    client = app.test_client()

    gone = client.post(path(app, ada), data={"action": "unsubscribe"})
    assert consent(sessions, ada)["status"] == "unsubscribed"
    assert "You are unsubscribed from all our emails" in gone.get_data(as_text=True)
    assert 'value="resubscribe"' in gone.get_data(as_text=True)

    back = client.post(path(app, ada), data={"action": "resubscribe"})
    assert consent(sessions, ada)["status"] == "active"
    assert 'value="resubscribe"' not in back.get_data(as_text=True)
    assert [(r.source, r.after) for r in ledger(sessions)[-2:]] == [
        ("preference-centre", "unsubscribed"),
        ("preference-centre", "active"),
    ]


def test_it_holds_the_next_email_to_the_chosen_frequency(
    app: Flask,
    sessions: sessionmaker[Session],
    settings: EngineSettings,
    smtp_sink: SmtpSink,
    ada: int,
) -> None:
    event(sessions, ADA, "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    run(sessions, settings, MONDAY, sink=smtp_sink)

    app.test_client().post(
        path(app, ada), data={"topic": ["nurture", "newsletter"], "frequency": "1/7d"}
    )
    run(sessions, settings, at("2026-03-04 10:00"), sink=smtp_sink)

    # The funnel alone would send the video invite on Wednesday; one a week waits a week.
    invite = {m.template: m for m in messages(sessions, ADA)}["video1-invite"]
    assert (invite.status, invite.due_at) == ("deferred", at("2026-03-09 10:00"))
    assert len(smtp_sink.messages) == 1


def test_it_stops_mail_on_a_topic_switched_off(
    app: Flask,
    sessions: sessionmaker[Session],
    settings: EngineSettings,
    smtp_sink: SmtpSink,
    ada: int,
) -> None:
    app.test_client().post(path(app, ada), data={"topic": ["newsletter"], "frequency": "none"})

    event(sessions, ADA, "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    run(sessions, settings, MONDAY, sink=smtp_sink)

    [welcome] = messages(sessions, ADA)[:1]
    assert welcome.status == "suppressed" and "nurture" in (welcome.reason or "")
    assert smtp_sink.messages == []


@pytest.mark.parametrize(
    ("locale", "heading", "button"),
    [
        ("de", "Ihre E-Mail-Einstellungen", "Auswahl speichern"),
        ("fr-CA", "Vos préférences d’e-mail", "Enregistrer mes choix"),
        ("es_ES", "Tus preferencias de correo", "Guardar mis preferencias"),
        ("en-GB", "Your email preferences", "Save my choices"),
    ],
)
def test_it_speaks_the_contacts_language(
    app: Flask, sessions: sessionmaker[Session], locale: str, heading: str, button: str
) -> None:
    contact_id = subscribe(sessions, ADA, MONDAY, locale=locale)

    # The contact's own language wins over the browser's.
    response = app.test_client().get(
        path(app, contact_id),
        headers={"Accept-Language": "fr, de;q=0.5"}
        if locale.startswith("en")
        else {"Accept-Language": "en"},
    )

    page = response.get_data(as_text=True)
    assert f"<h1>{heading}</h1>" in page and button in page
    assert f'<html lang="{locale[:2]}">' in page


def test_it_falls_back_to_the_browsers_language_then_english(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    contact_id = subscribe(sessions, ADA, MONDAY, locale="ja")
    client = app.test_client()

    german = client.get(
        path(app, contact_id), headers={"Accept-Language": "ja, de;q=0.8"}
    ).get_data(as_text=True)
    english = client.get(path(app, contact_id), headers={"Accept-Language": "ja"}).get_data(
        as_text=True
    )

    assert "<h1>Ihre E-Mail-Einstellungen</h1>" in german
    assert "<h1>Your email preferences</h1>" in english
