"""Clicks on tracked links: the redirect, the event, the move it causes, and refusals."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from urllib.parse import urlparse

from itsdangerous import URLSafeSerializer

from app import tokens
from app.services import tracking as tracking_svc
from tests.conftest import make_test_app
from tests.helpers import enrollment, messages
from tests.tracking_helpers import (
    ADA,
    BROWSER,
    EXPLAINER,
    MONDAY,
    clock,
    events,
    hits,
    link,
    pixel,
    send_invite,
)

LATER = MONDAY + timedelta(minutes=5)


def test_it_redirects_a_click_on_a_sent_link_and_moves_the_contact(
    app, sessions, settings, smtp_sink, monkeypatch
):
    received = send_invite(sessions, settings, smtp_sink)
    href = link(received, "Watch the explainer")
    assert href.startswith("http://nurture.test/l/")

    clock(monkeypatch, LATER)
    response = app.test_client().get(urlparse(href).path, headers={"User-Agent": BROWSER})

    assert response.status_code == 302
    assert response.headers["Location"] == EXPLAINER
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert enrollment(sessions, ADA).stage_key == "clicked"
    [invite, quiz] = messages(sessions, ADA)
    assert (quiz.template, quiz.due_at) == ("quiz-invite", LATER + timedelta(hours=1))
    [clicked] = events(sessions, "email_clicked")
    assert clicked.properties == {
        "url": EXPLAINER,
        "template": "video1-invite",
        "funnel": "click-through",
        "stage": "invited",
        "message_id": invite.id,
    }
    assert (clicked.occurred_at, clicked.source) == (LATER, "tracking")
    [hit] = hits(sessions)
    assert (hit.kind, hit.url, hit.bot, hit.event_id, hit.user_agent) == (
        "click",
        EXPLAINER,
        False,
        clicked.id,
        BROWSER,
    )


def test_it_wraps_every_content_link_and_leaves_the_recipient_links(sessions, settings, smtp_sink):
    received = send_invite(sessions, settings, smtp_sink)
    assert EXPLAINER not in received.html
    assert link(received, "Unsubscribe").startswith("http://nurture.test/u/")
    assert link(received, "Choose what you get").startswith("http://nurture.test/p/")
    assert pixel(received).startswith("http://nurture.test/o/")
    # The text part keeps the link as written.
    assert EXPLAINER in received.text


def test_it_sends_links_untouched_and_no_pixel_when_the_funnel_turns_tracking_off(
    sessions, settings, smtp_sink
):
    received = send_invite(sessions, settings, smtp_sink, tracking=False)
    assert link(received, "Watch the explainer") == EXPLAINER
    assert "/l/" not in received.html and "/o/" not in received.html


def test_it_refuses_a_tampered_token(app, sessions, settings, smtp_sink, monkeypatch):
    path = urlparse(link(send_invite(sessions, settings, smtp_sink), "Watch the explainer")).path
    clock(monkeypatch, LATER)
    client = app.test_client()
    flipped = path[:-3] + ("A" if path[-3] != "A" else "B") + path[-2:]
    for bad in (flipped, path[:-5], path + "x", path + "/https://evil.example/"):
        response = client.get(bad, headers={"User-Agent": BROWSER})
        assert response.status_code == 404, bad
        assert "This link does not work" in response.get_data(as_text=True)
        assert "Location" not in response.headers
    assert hits(sessions) == [] and enrollment(sessions, ADA).stage_key == "invited"


def test_it_refuses_a_link_to_a_host_that_was_not_in_the_email(app, sessions, settings, smtp_sink):
    path = urlparse(link(send_invite(sessions, settings, smtp_sink), "Watch the explainer")).path
    token = path.removeprefix("/l/")
    [invite] = messages(sessions, ADA)
    client = app.test_client()

    # The signed payload swapped for one naming another host, signature kept.
    payload, signature = token.rsplit(".", 1)
    evil = [invite.contact_id, invite.id, "https://evil.example/phish"]
    swapped = base64.urlsafe_b64encode(json.dumps(evil).encode()).decode().rstrip("=")
    # A token for that host signed with another key, and one for javascript: signed with
    # ours (only a leaked key could make one; the route still refuses to follow it).
    forged = tokens.make("link", "not-our-key", invite.contact_id, invite.id, evil[2])
    script = tokens.make(
        "link",
        app.config["SECRET_KEY"],
        invite.contact_id,
        invite.id,
        "javascript:alert(document.cookie)",
    )
    for bad in (f"{swapped}.{signature}", forged, script):
        response = client.get(f"/l/{bad}", headers={"User-Agent": BROWSER})
        assert response.status_code == 404
        assert "Location" not in response.headers
    # A query string cannot steer the redirect either.
    response = client.get(f"{path}?url=https://evil.example/", headers={"User-Agent": BROWSER})
    assert response.headers["Location"] == EXPLAINER


def test_it_refuses_an_unsubscribe_token_used_as_a_link(app, sessions, settings, smtp_sink):
    send_invite(sessions, settings, smtp_sink)
    [invite] = messages(sessions, ADA)
    # Same key, other kind: tokens are salted per kind.
    serializer = URLSafeSerializer(app.config["SECRET_KEY"], salt="nurture.unsubscribe")
    other = serializer.dumps([invite.contact_id, invite.id, "https://evil.example/"])
    assert app.test_client().get(f"/l/{other}").status_code == 404


def test_it_still_redirects_when_recording_the_click_fails(db_url, monkeypatch):
    app = make_test_app(db_url, TESTING=False)
    try:
        token = tokens.make("link", app.config["SECRET_KEY"], 1, 1, EXPLAINER)

        def broken(*_args: object) -> None:
            raise RuntimeError("database is down")

        monkeypatch.setattr(tracking_svc, "record", broken)
        response = app.test_client().get(f"/l/{token}", headers={"User-Agent": BROWSER})
        assert (response.status_code, response.headers["Location"]) == (302, EXPLAINER)
    finally:
        app.extensions["nurture.engine"].dispose()


def test_it_redirects_a_link_whose_message_is_gone_without_recording_it(app, sessions):
    token = tokens.make("link", app.config["SECRET_KEY"], 12345, 67890, EXPLAINER)
    response = app.test_client().get(f"/l/{token}", headers={"User-Agent": BROWSER})
    assert (response.status_code, response.headers["Location"]) == (302, EXPLAINER)
    assert hits(sessions) == []


def test_it_follows_links_signed_before_a_key_rotation(db_url):
    app = make_test_app(db_url, SECRET_KEY="the-new-key", SECRET_KEY_FALLBACKS=["the-old-key"])
    try:
        client = app.test_client()
        old = tokens.make("link", "the-old-key", 1, 1, EXPLAINER)
        gone = tokens.make("link", "a-key-no-longer-kept", 1, 1, EXPLAINER)
        assert client.get(f"/l/{old}", headers={"User-Agent": BROWSER}).status_code == 302
        assert client.get(f"/l/{gone}", headers={"User-Agent": BROWSER}).status_code == 404
    finally:
        app.extensions["nurture.engine"].dispose()
