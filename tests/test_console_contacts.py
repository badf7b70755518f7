"""Console contacts: search by email or attribute (SQLite and PostgreSQL), paging, the
timeline, and manual consent changes written to the ledger as the console user."""

from __future__ import annotations

import re
from html import unescape

from flask import Flask
from sqlalchemy import select

from app.models import ConsentChange, Contact
from app.services import contacts as contacts_svc
from app.settings import EngineSettings
from tests.console_support import MONDAY, logged_in, post, with_history
from tests.helpers import subscribe


def emails_on(page: str) -> list[str]:
    return re.findall(r'href="/console/contacts/\d+">([^<]+)</a>', page)


def contact_id(app: Flask, email: str) -> int:
    with app.extensions["nurture.sessions"]() as session:
        found = contacts_svc.find(session, email)
        assert found is not None
        return found.id


def test_it_finds_contacts_by_part_of_the_email_or_an_attribute(app: Flask) -> None:
    sessions = app.extensions["nurture.sessions"]
    subscribe(sessions, "ada@acme.example", MONDAY, company="Acme", seats=12)
    subscribe(sessions, "bob@acme.example", MONDAY, company="Initech")
    subscribe(sessions, "cy@other.example", MONDAY, company="Acme", locale="de")
    client = logged_in(app)

    def search(query: str) -> list[str]:
        return emails_on(
            client.get("/console/contacts", query_string={"q": query}).get_data(as_text=True)
        )

    assert search("ACME.example") == ["ada@acme.example", "bob@acme.example"]
    assert search("company=Acme") == ["ada@acme.example", "cy@other.example"]
    assert search("seats=12") == ["ada@acme.example"]
    assert search("locale=de") == ["cy@other.example"]
    assert search("status=unsubscribed") == []
    assert search("100%_") == []  # LIKE wildcards are taken literally
    bad = client.get("/console/contacts", query_string={"q": "na me=x"})
    assert bad.status_code == 400 and "An attribute search looks like" in bad.get_data(as_text=True)


def test_it_pages_through_results_fifty_at_a_time(app: Flask) -> None:
    from app.models import Contact as Row

    with app.extensions["nurture.sessions"].begin() as session:
        session.add_all(
            Row(email=f"c{i:03}@example.com", attributes={}, created_at=MONDAY, updated_at=MONDAY)
            for i in range(120)
        )
    client = logged_in(app)

    first = client.get("/console/contacts").get_data(as_text=True)
    third = client.get("/console/contacts?page=3").get_data(as_text=True)

    assert len(emails_on(first)) == 50 and "120 contacts · page 1 of 3" in first
    assert emails_on(third) == [f"c{i:03}@example.com" for i in range(100, 120)]
    assert "Next 50" not in third and "Previous 50" in third


def test_the_timeline_shows_events_moves_emails_and_consent(
    app: Flask, settings: EngineSettings
) -> None:
    with_history(app.extensions["nurture.sessions"], settings)
    client = logged_in(app)

    html = client.get(f"/console/contacts/{contact_id(app, 'ada@example.com')}").get_data(
        as_text=True
    )
    page = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())

    assert "Event video_watched video: explainer-1, percent: 80 · via api" in page
    assert "Stage Moved to watched_video1 in b2b-nurture from read_ebook, on an event" in page
    assert "Stage Entered b2b-nurture at read_ebook" in page
    assert "Email ebook-welcome sent b2b-nurture · read_ebook · sent 2026-03-02 10:01 UTC" in page
    assert (
        "Email quiz-invite deferred b2b-nurture · watched_video1 · due 2026-03-03 10:01 UTC · "
        "cap 1/1d reached" in page
    )
    assert "Email video1-invite cancelled" in page
    assert "Consent Topic nurture: not set → subscribed source test" in page
    order = [page.index(s) for s in ("quiz-invite deferred", "video_watched", "ebook_downloaded")]
    assert order == sorted(order)  # newest first


def test_a_manual_consent_change_goes_to_the_ledger_as_the_console_user(app: Flask) -> None:
    sessions = app.extensions["nurture.sessions"]
    subscribe(sessions, "ada@example.com", MONDAY)
    ada = contact_id(app, "ada@example.com")
    client = logged_in(app, "maya@nurture.test")

    response = post(
        client,
        f"/console/contacts/{ada}/consent",
        {
            "status": "active",
            "topic-nurture": "unsubscribed",
            "new_topic": "newsletter",
            "new_topic_state": "subscribed",
        },
        headers={"User-Agent": "console-test"},
    )

    assert "2 changes written to the consent ledger" in client.get(
        response.headers["Location"]
    ).get_data(as_text=True)
    with sessions() as session:
        rows = session.scalars(
            select(ConsentChange)
            .where(ConsentChange.source == "console")
            .order_by(ConsentChange.id)
        ).all()
        assert [(r.topic, r.before, r.after) for r in rows] == [
            ("nurture", "subscribed", "unsubscribed"),
            ("newsletter", None, "subscribed"),
        ]
        assert {(r.actor, r.ip, r.user_agent) for r in rows} == {
            ("maya@nurture.test", "127.0.0.1", "console-test")
        }
        contact = session.get(Contact, ada)
        assert contact is not None
        assert contacts_svc.consent_view(contact)["topics"] == {
            "newsletter": "subscribed",
            "nurture": "unsubscribed",
        }


def test_saving_the_same_choices_changes_nothing(app: Flask) -> None:
    subscribe(app.extensions["nurture.sessions"], "ada@example.com", MONDAY)
    ada = contact_id(app, "ada@example.com")
    client = logged_in(app)

    response = post(
        client,
        f"/console/contacts/{ada}/consent",
        {"status": "active", "topic-nurture": "subscribed"},
    )

    assert "Nothing changed" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_an_unknown_contact_is_a_plain_404(app: Flask) -> None:
    assert logged_in(app).get("/console/contacts/999").status_code == 404
