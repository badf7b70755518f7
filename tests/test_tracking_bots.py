"""Mail scanners and link checkers: answered like people, counted apart, never moving anyone."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import pytest

from app.services.tracking import Hit, bot_reason
from tests.helpers import enrollment
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
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"


def click_path(sessions, settings, smtp_sink) -> str:
    return urlparse(link(send_invite(sessions, settings, smtp_sink), "Watch the explainer")).path


def test_it_counts_a_click_at_delivery_as_a_scanner_and_moves_no_one(
    app, sessions, settings, smtp_sink, monkeypatch
):
    path = click_path(sessions, settings, smtp_sink)
    clock(monkeypatch, MONDAY + timedelta(seconds=3))
    response = app.test_client().get(path, headers={"User-Agent": BROWSER})

    assert (response.status_code, response.headers["Location"]) == (302, EXPLAINER)
    [hit] = hits(sessions)
    assert (hit.bot, hit.reason, hit.event_id) == (True, "within 10s of delivery", None)
    assert events(sessions, "email_clicked") == []
    assert enrollment(sessions, ADA).stage_key == "invited"


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        (SCANNER, "scanner user agent (barracuda)"),
        ("python-requests/2.31", "scanner user agent (python-requests)"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) BingPreview/1.0b",
            "scanner user agent (bingpreview)",
        ),
        ("", "no user agent"),
    ],
)
def test_it_counts_a_known_scanner_apart(
    app, sessions, settings, smtp_sink, monkeypatch, agent, reason
):
    path = click_path(sessions, settings, smtp_sink)
    clock(monkeypatch, LATER)
    response = app.test_client().get(path, headers={"User-Agent": agent})

    assert (response.status_code, response.headers["Location"]) == (302, EXPLAINER)
    [hit] = hits(sessions)
    assert (hit.bot, hit.reason) == (True, reason)
    assert enrollment(sessions, ADA).stage_key == "invited"


def test_it_takes_a_head_request_for_a_link_checker(
    app, sessions, settings, smtp_sink, monkeypatch
):
    path = click_path(sessions, settings, smtp_sink)
    clock(monkeypatch, LATER)
    assert app.test_client().head(path, headers={"User-Agent": BROWSER}).status_code == 302
    [hit] = hits(sessions)
    assert (hit.bot, hit.reason) == (True, "HEAD request")
    assert enrollment(sessions, ADA).stage_key == "invited"


def test_it_takes_a_burst_of_clicks_for_a_scanner(app, sessions, settings, smtp_sink, monkeypatch):
    received = send_invite(sessions, settings, smtp_sink)
    paths = [urlparse(link(received, text)).path for text in ("Watch the explainer",) * 3]
    client = app.test_client()
    for second, path in enumerate(paths):
        clock(monkeypatch, LATER + timedelta(seconds=second))
        assert client.get(path, headers={"User-Agent": BROWSER}).status_code == 302
    assert [(h.bot, h.reason) for h in hits(sessions)] == [
        (False, None),
        (False, None),
        (True, "3 clicks within 5s"),
    ]
    assert len(events(sessions, "email_clicked")) == 2


def test_it_takes_the_gmail_image_proxy_for_a_reader(
    app, sessions, settings, smtp_sink, monkeypatch
):
    received = send_invite(sessions, settings, smtp_sink)
    clock(monkeypatch, LATER)
    agent = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    response = app.test_client().get(urlparse(pixel(received)).path, headers={"User-Agent": agent})
    assert response.status_code == 200
    [hit] = hits(sessions)
    assert (hit.kind, hit.bot) == ("open", False)
    assert len(events(sessions, "email_opened")) == 1


def test_it_decides_from_the_hit_alone_when_nothing_else_is_known():
    hit = Hit(kind="click", contact_id=1, message_id=1, url=EXPLAINER, user_agent=BROWSER)
    assert bot_reason(hit, None, 0, LATER) is None
    assert bot_reason(hit, LATER + timedelta(seconds=2), 0, LATER) == "within 10s of delivery"
    assert bot_reason(hit, LATER - timedelta(seconds=10), 0, LATER) is None
    opens = Hit(kind="open", contact_id=1, message_id=1, user_agent=BROWSER)
    assert bot_reason(opens, None, 5, LATER) is None  # a reader may reopen an email often
