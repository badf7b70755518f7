"""The open pixel: an image always, an `email_opened` estimate for the first human open."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

from app import tokens
from tests.helpers import enrollment, messages
from tests.tracking_helpers import ADA, BROWSER, MONDAY, clock, events, hits, pixel, send_invite

LATER = MONDAY + timedelta(hours=2)


def test_it_records_an_open_as_an_estimate_that_funnels_can_use(
    app, sessions, settings, smtp_sink, monkeypatch
):
    path = urlparse(pixel(send_invite(sessions, settings, smtp_sink))).path
    clock(monkeypatch, LATER)
    response = app.test_client().get(path, headers={"User-Agent": BROWSER})

    assert (response.status_code, response.mimetype) == (200, "image/gif")
    assert response.data[:10] == b"GIF89a\x01\x00\x01\x00"  # a 1x1 GIF
    assert "no-store" in response.headers["Cache-Control"]
    [opened] = events(sessions, "email_opened")
    [invite, *_] = messages(sessions, ADA)
    assert opened.properties == {
        "template": "video1-invite",
        "funnel": "click-through",
        "stage": "invited",
        "message_id": invite.id,
        "estimate": True,
    }
    assert enrollment(sessions, ADA).stage_key == "opened"


def test_it_makes_an_event_of_the_first_human_open_only(
    app, sessions, settings, smtp_sink, monkeypatch
):
    path = urlparse(pixel(send_invite(sessions, settings, smtp_sink))).path
    client = app.test_client()
    for minutes in (0, 60, 61):  # a prefetch at delivery, then the reader, then again
        clock(monkeypatch, MONDAY + timedelta(minutes=minutes, seconds=2))
        assert client.get(path, headers={"User-Agent": BROWSER}).status_code == 200
    assert [(h.bot, h.event_id is not None) for h in hits(sessions)] == [
        (True, False),
        (False, True),
        (False, False),
    ]
    assert len(events(sessions, "email_opened")) == 1


def test_it_answers_a_refused_token_with_an_image_too(app, sessions, settings, smtp_sink):
    send_invite(sessions, settings, smtp_sink)
    [invite] = messages(sessions, ADA)
    link_token = tokens.make("link", app.config["SECRET_KEY"], invite.contact_id, invite.id, "x")
    client = app.test_client()
    for bad in ("/o/not-a-token", f"/o/{link_token}"):
        response = client.get(bad, headers={"User-Agent": BROWSER})
        assert (response.status_code, response.mimetype) == (404, "image/gif")
    assert hits(sessions) == []
