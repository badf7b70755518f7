"""GET /messages: each message with its status, template, stage, times and attempts."""

from __future__ import annotations

import pytest

from tests.apiclient import Api, error_of, freeze
from tests.conftest import at
from tests.helpers import ROOT, run

MONDAY = at("2026-03-02 10:00")
EBOOK = {"type": "ebook_downloaded", "properties": {"ebook": "seven-fundamentals"}}


@pytest.fixture
def api(app, monkeypatch, sessions, settings, smtp_sink):
    """Ada and Bob in the six-step funnel; Ada's welcome sent, Bob's refused for good."""
    freeze(monkeypatch, MONDAY)
    client = Api.for_app(app)
    client.put("/funnels/b2b-nurture", data=(ROOT / "funnels" / "b2b-nurture.yaml").read_text())
    client.post("/funnels/b2b-nurture/publish")
    for email in ("ada@example.com", "bob@example.com"):
        client.post(f"/contacts/{email}/consent", json={"topics": {"nurture": True}})
        client.post("/events", json={"email": email, **EBOOK})
    smtp_sink.reply_rcpt("bob@example.com", "550 5.1.1 No such user")
    run(sessions, settings, MONDAY, sink=smtp_sink)
    return client


def listing(api, query: str = "") -> list[dict]:
    response = api.get(f"/messages{query}")
    assert response.status_code == 200, response.data
    return response.get_json()["messages"]


def test_it_lists_every_message_with_its_details(api):
    welcome, invite = listing(api, "?email=ada@example.com")
    assert welcome == {
        "id": welcome["id"],
        "email": "ada@example.com",
        "funnel": "b2b-nurture",
        "stage": "read_ebook",
        "template": "ebook-welcome",
        "status": "sent",
        "due_at": "2026-03-02T10:00:00+00:00",
        "sent_at": "2026-03-02T10:00:00+00:00",
        "attempts": 1,
        "reason": None,
    }
    assert (invite["template"], invite["status"], invite["sent_at"]) == (
        "video1-invite",
        "scheduled",
        None,
    )
    assert invite["due_at"] == "2026-03-04T10:00:00+00:00"


def test_it_filters_by_email_funnel_and_status(api):
    assert [m["email"] for m in listing(api, "?status=failed")] == ["bob@example.com"]
    assert len(listing(api, "?funnel=b2b-nurture")) == 4
    assert listing(api, "?funnel=other") == []
    assert [m["template"] for m in listing(api, "?email=BOB@example.com&status=scheduled")] == [
        "video1-invite"
    ]
    assert listing(api, "?status=skipped") == []  # the engine's own statuses filter too


def test_it_pages_by_id(api):
    first = api.get("/messages?limit=3").get_json()
    assert len(first["messages"]) == 3
    rest = api.get(f"/messages?limit=3&after={first['next_after']}").get_json()
    assert len(rest["messages"]) == 1 and rest["next_after"] is None
    ids = [m["id"] for m in first["messages"] + rest["messages"]]
    assert ids == sorted(ids) and len(set(ids)) == 4


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=bounced", "status"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
        ("?after=-1", "after"),
        ("?email=not-an-email", "email"),
        ("?funnel=Not%20a%20key", "funnel"),
        ("?colour=blue", "colour"),
        ("?email=a%00@example.com", "email"),
    ],
)
def test_it_refuses_an_invalid_filter(api, query, field):
    response = api.get(f"/messages{query}")
    assert response.status_code == 422
    assert error_of(response)["field"] == field
