"""The consent ledger: GETs write nothing, every change appends a row, rows are never
rewritten, and current consent can be rebuilt from the ledger alone."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import tokens
from app.delivery.transport import MemoryTransport
from app.models import ConsentChange, Contact, Subscription
from app.services import contacts as contacts_svc
from app.services import optin
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import ROOT, event, publish, run, subscribe
from tests.support.smtp import SmtpSink

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
MONDAY = at("2026-03-02 10:00")
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def link(app: Flask, kind: str, contact_id: int, extra: str | None = None) -> str:
    prefix = {"unsubscribe": "/u/", "preferences": "/p/", "confirm": "/c/"}[kind]
    return prefix + tokens.make(kind, app.config["SECRET_KEY"], contact_id, 9, extra=extra)


def snapshot(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Everything consent is made of, as plain values."""
    with sessions() as s:
        return {
            "ledger": [
                _row(r) for r in s.scalars(select(ConsentChange).order_by(ConsentChange.id))
            ],
            "contacts": [
                (c.id, c.status, c.frequency, c.updated_at)
                for c in s.scalars(select(Contact).order_by(Contact.id))
            ],
            "subscriptions": sorted(
                (x.contact_id, x.topic, x.status, x.updated_at)
                for x in s.scalars(select(Subscription))
            ),
        }


def _row(r: ConsentChange) -> tuple[object, ...]:
    return (
        r.id,
        r.contact_id,
        r.at,
        r.source,
        r.topic,
        r.field,
        r.before,
        r.after,
        r.ip,
        r.user_agent,
        r.actor,
        r.message_id,
    )


def pending(
    sessions: sessionmaker[Session], settings: EngineSettings, email: str, topic: str
) -> None:
    with sessions.begin() as s:
        contact = contacts_svc.find(s, email)
        assert contact is not None
        optin.request(
            s,
            contact,
            topic,
            MONDAY,
            contacts_svc.Actor(source="api"),
            settings,
            transport=MemoryTransport(),
            double_opt_in=(topic,),
        )


def test_it_changes_nothing_on_a_get_of_any_recipient_url(
    app: Flask, sessions: sessionmaker[Session], settings: EngineSettings
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    ada = subscribe(sessions, "ada@example.com", MONDAY, locale="de")
    pending(sessions, settings, "ada@example.com", "newsletter")
    before = snapshot(sessions)
    urls = [
        link(app, "unsubscribe", ada),
        link(app, "preferences", ada),
        link(app, "confirm", ada, "newsletter"),
        link(app, "confirm", ada, "nurture"),
        link(app, "unsubscribe", ada) + "/resubscribe",
        "/u/forged",
        "/p/forged",
        "/c/forged",
    ]

    client = app.test_client()
    codes = {url: (client.get(url).status_code, client.head(url).status_code) for url in urls}

    assert list(codes.values()) == [(200, 200)] * 4 + [(404, 404)] * 4
    after = snapshot(sessions)
    assert len(after["ledger"]) == len(before["ledger"])
    assert after == before


def test_it_rebuilds_current_consent_from_the_ledger(
    app: Flask, sessions: sessionmaker[Session], settings: EngineSettings, smtp_sink: SmtpSink
) -> None:
    app.config.update(
        DOUBLE_OPT_IN_TOPICS=["newsletter"], SMTP_HOST=smtp_sink.host, SMTP_PORT=smtp_sink.port
    )
    publish(sessions, FUNNEL, MONDAY)
    ada = subscribe(sessions, "ada@example.com", MONDAY, timezone="Europe/London")
    client = app.test_client(use_cookies=False)
    prefs = link(app, "preferences", ada)

    client.post(link(app, "unsubscribe", ada), data=ONE_CLICK)
    client.post(link(app, "unsubscribe", ada) + "/resubscribe")
    client.post(prefs, data={"topic": [], "frequency": "1/1d"})
    client.post(prefs, data={"topic": ["nurture"], "frequency": "1/7d"})
    with sessions.begin() as s:  # the newsletter is offered once Ada has a row for it
        found = s.get(Contact, ada)
        assert found is not None
        contacts_svc.set_topic(
            s, found, "newsletter", "unsubscribed", MONDAY, contacts_svc.Actor(source="import")
        )
    client.post(prefs, data={"topic": ["nurture", "newsletter"], "frequency": "1/30d"})
    [confirmation] = smtp_sink.wait_for(1)
    client.post("/c/" + confirmation.text.split("/c/", 1)[1].split()[0])
    client.post(prefs, data={"action": "unsubscribe"})
    client.post(prefs, data={"action": "resubscribe"})

    with sessions() as s:
        found = s.get(Contact, ada)
        assert found is not None
        assert contacts_svc.rebuild_consent(s, ada) == contacts_svc.consent_view(found)
        assert contacts_svc.consent_view(found) == {
            "status": "active",
            "topics": {"newsletter": "subscribed", "nurture": "subscribed"},
            "frequency": "1/30d",
        }
        sources = {
            row.source
            for row in s.scalars(select(ConsentChange).where(ConsentChange.contact_id == ada))
        }
    assert sources == {
        "test",
        "one-click",
        "resubscribe",
        "preference-centre",
        "import",
        "double-opt-in",
    }


def test_it_rebuilds_a_bounce_recorded_by_the_worker(
    sessions: sessionmaker[Session], settings: EngineSettings, smtp_sink: SmtpSink
) -> None:
    publish(sessions, FUNNEL, MONDAY)
    bob = subscribe(sessions, "bob@example.com", MONDAY)
    smtp_sink.reply_rcpt("bob@example.com", "550 5.1.1 No such user")

    event(sessions, "bob@example.com", "ebook_downloaded", MONDAY, ebook="seven-fundamentals")
    run(sessions, settings, MONDAY, sink=smtp_sink)

    with sessions() as s:
        found = s.get(Contact, bob)
        assert found is not None and found.status == "bounced"
        assert contacts_svc.rebuild_consent(s, bob) == contacts_svc.consent_view(found)


def test_it_rebuilds_nothing_for_a_contact_without_changes(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        contact, _ = contacts_svc.get_or_create(s, "new@example.com", MONDAY)
        s.flush()
        contact_id = contact.id

    with sessions() as s:
        assert contacts_svc.rebuild_consent(s, contact_id) == {
            "status": "active",
            "topics": {},
            "frequency": None,
        }


def test_it_only_ever_appends_to_the_ledger(app: Flask, sessions: sessionmaker[Session]) -> None:
    publish(sessions, FUNNEL, MONDAY)
    ada = subscribe(sessions, "ada@example.com", MONDAY)
    client = app.test_client()
    client.post(link(app, "unsubscribe", ada), data=ONE_CLICK)
    earlier = snapshot(sessions)["ledger"]

    client.post(link(app, "unsubscribe", ada) + "/resubscribe")
    client.post(link(app, "preferences", ada), data={"topic": [], "frequency": "1/30d"})
    client.post(link(app, "preferences", ada), data={"action": "unsubscribe"})

    later = snapshot(sessions)["ledger"]
    assert later[: len(earlier)] == earlier
    assert len(later) == len(earlier) + 4
