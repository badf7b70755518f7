"""Contacts through the API: upsert, read with consent and enrollments, consent changes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import ConsentChange, Contact
from app.services import contacts as contacts_svc
from tests.apiclient import Api, error_of, freeze
from tests.conftest import at, make_test_app
from tests.helpers import ROOT

MONDAY = at("2026-03-02 10:00")
ADA = "/contacts/ada@example.com"


@pytest.fixture
def api(app, monkeypatch):
    freeze(monkeypatch, MONDAY)
    return Api.for_app(app, "crm-sync")


def ledger(sessions) -> list[tuple]:
    with sessions() as s:
        rows = s.scalars(select(ConsentChange).order_by(ConsentChange.id))
        return [(r.source, r.field, r.topic, r.before, r.after, r.actor) for r in rows]


def test_it_creates_then_updates_a_contact(api):
    created = api.put(
        ADA, json={"attributes": {"first_name": "Ada", "timezone": "Europe/London", "plan": "pro"}}
    )
    assert created.status_code == 201
    updated = api.put(
        "/contacts/ADA@Example.COM", json={"attributes": {"locale": "en-GB", "plan": None}}
    )
    assert updated.status_code == 200
    body = updated.get_json()
    assert body["email"] == "ada@example.com"
    assert body["attributes"] == {
        "first_name": "Ada",
        "timezone": "Europe/London",
        "locale": "en-GB",
    }
    assert body["created_at"] == "2026-03-02T10:00:00+00:00"


def test_it_returns_a_contact_with_consent_and_enrollments(api):
    api.put("/funnels/b2b-nurture", data=(ROOT / "funnels" / "b2b-nurture.yaml").read_text())
    api.post("/funnels/b2b-nurture/publish")
    api.post(f"{ADA}/consent", json={"topics": {"nurture": True}})
    api.post(
        "/events",
        json={
            "email": "ada@example.com",
            "type": "ebook_downloaded",
            "properties": {"ebook": "seven-fundamentals"},
        },
    )
    body = api.get(ADA).get_json()
    assert body["consent"] == {
        "status": "active",
        "topics": {"nurture": "subscribed"},
        "frequency": None,
    }
    [enrollment] = body["enrollments"]
    assert enrollment == {
        "funnel": "b2b-nurture",
        "status": "active",
        "stage": "read_ebook",
        "stage_entered_at": "2026-03-02T10:00:00+00:00",
        "enrolled_at": "2026-03-02T10:00:00+00:00",
        "exited_at": None,
        "exit_label": None,
    }


def test_it_answers_404_for_an_unknown_contact(api):
    response = api.get("/contacts/nobody@example.com")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("address", "reason"),
    [("ada.example.com", "@-sign"), ("ada@example", "period"), ("ada@localhost", "")],
)
def test_it_says_which_email_is_invalid_and_why(api, address, reason):
    response = api.put(f"/contacts/{address}", json={"attributes": {}})
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid_email", "email")
    assert address in error["message"] and reason in error["message"]


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "attributes.timezone"),
        ({"locale": "english please"}, "attributes.locale"),
        ({"first_name": 42}, "attributes.first_name"),
        ({"first_name": "x" * 201}, "attributes.first_name"),
        ({"": "empty name"}, "attributes"),
    ],
)
def test_it_names_the_invalid_attribute(api, sessions, attributes, field):
    response = api.put(ADA, json={"attributes": attributes})
    assert response.status_code == 422
    assert error_of(response)["field"] == field
    with sessions() as s:
        assert s.scalar(select(Contact)) is None


def test_it_writes_consent_changes_to_the_ledger_as_api(api, sessions):
    response = api.post(
        f"{ADA}/consent",
        json={"topics": {"nurture": True, "newsletter": "unsubscribed"}, "frequency": "1/7d"},
        headers={"User-Agent": "crm/2.0"},
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "active",
        "topics": {"newsletter": "unsubscribed", "nurture": "subscribed"},
        "frequency": "1/7d",
    }
    assert sorted(ledger(sessions)) == [
        ("api", "frequency", None, None, "1/7d", "crm-sync"),
        ("api", "topic", "newsletter", None, "unsubscribed", "crm-sync"),
        ("api", "topic", "nurture", None, "subscribed", "crm-sync"),
    ]
    with sessions() as s:
        row = s.scalar(select(ConsentChange).limit(1))
        assert (row.ip, row.user_agent) == ("127.0.0.1", "crm/2.0")


def test_it_writes_nothing_when_consent_does_not_change(api, sessions):
    api.post(f"{ADA}/consent", json={"topics": {"nurture": "subscribed"}})
    api.post(f"{ADA}/consent", json={"topics": {"nurture": True}})
    assert len(ledger(sessions)) == 1


def test_it_unsubscribes_from_everything_and_back(api, sessions):
    assert (
        api.post(f"{ADA}/consent", json={"status": "unsubscribed"}).get_json()["status"]
        == "unsubscribed"
    )
    assert (
        api.post(f"{ADA}/consent", json={"status": "active", "frequency": None}).get_json()[
            "status"
        ]
        == "active"
    )
    assert [row[1:5] for row in ledger(sessions)] == [
        ("status", None, "active", "unsubscribed"),
        ("status", None, "unsubscribed", "active"),
    ]


def test_it_will_not_reactivate_a_bounced_address(api, sessions):
    with sessions.begin() as s:
        contact, _ = contacts_svc.get_or_create(s, "ada@example.com", MONDAY)
        contacts_svc.set_status(s, contact, "bounced", MONDAY, contacts_svc.Actor(source="smtp"))
    response = api.post(f"{ADA}/consent", json={"status": "active"})
    assert response.status_code == 409
    assert error_of(response)["field"] == "status"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topics": {"nurture": "maybe"}}, "topics.nurture"),
        ({"topics": {"Not A Topic": True}}, "topics.Not A Topic"),
        ({"status": "bounced"}, "status"),
        ({"frequency": "often"}, "frequency"),
        ({"topics": ["nurture"]}, "topics"),
    ],
)
def test_it_refuses_an_invalid_consent_change(api, sessions, body, field):
    response = api.post(f"{ADA}/consent", json=body)
    assert response.status_code == 422
    assert error_of(response)["field"] == field
    assert ledger(sessions) == []


def test_it_asks_for_confirmation_of_a_double_opt_in_topic(db_url, smtp_sink, monkeypatch):
    app = make_test_app(db_url, DOUBLE_OPT_IN_TOPICS=["newsletter"], SMTP_PORT=smtp_sink.port)
    try:
        freeze(monkeypatch, MONDAY)
        api = Api.for_app(app)
        body = api.post(
            f"{ADA}/consent", json={"topics": {"newsletter": True, "nurture": True}}
        ).get_json()
        assert body["topics"] == {"newsletter": "pending", "nurture": "subscribed"}
        [confirmation] = smtp_sink.wait_for(1)
        assert confirmation.rcpt_tos == ("ada@example.com",)
        assert "http://nurture.test/c/" in confirmation.text
    finally:
        app.extensions["nurture.engine"].dispose()


def test_it_changes_nothing_when_the_confirmation_cannot_be_sent(db_url, smtp_sink, monkeypatch):
    app = make_test_app(db_url, DOUBLE_OPT_IN_TOPICS=["newsletter"], SMTP_PORT=smtp_sink.port)
    try:
        freeze(monkeypatch, MONDAY)
        smtp_sink.fail_next_data("451 4.3.0 Try again later")
        api = Api.for_app(app)
        response = api.post(f"{ADA}/consent", json={"topics": {"newsletter": True}})
        assert response.status_code == 503
        assert error_of(response)["code"] == "unavailable"
        assert api.get(ADA).status_code == 404  # not even the contact was kept
    finally:
        app.extensions["nurture.engine"].dispose()
