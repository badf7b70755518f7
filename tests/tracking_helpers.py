"""Verbs shared by the tracking tests: a funnel that reacts to clicks, one sent email,
its tracked links, and a clock for the tracking routes."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Event, TrackingHit
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import event, publish, run, subscribe
from tests.support.smtp import Received, SmtpSink

ADA = "ada@example.com"
MONDAY = at("2026-03-02 10:00")
EXPLAINER = "https://example.com/videos/explainer-1"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko)"

# The explainer invite goes out on entry; clicking its link is the way on.
FUNNEL = f"""
key: click-through
name: Click through
topic: nurture
tracking: {{tracking}}
entry: {{on: ebook_downloaded}}
exit: {{on: form_submitted, as: converted}}
stages:
  - key: invited
    emails: [{{template: video1-invite, after: 0m}}]
    transitions:
      - {{on: email_clicked, where: {{url: "{EXPLAINER}"}}, to: clicked}}
      - {{on: email_opened, to: opened}}
  - key: opened
    emails: [{{template: video1-invite, after: 1d}}]
    transitions:
      - {{on: email_clicked, where: {{url: "{EXPLAINER}"}}, to: clicked}}
  - key: clicked
    emails: [{{template: quiz-invite, after: 1h}}]
"""


def funnel(tracking: bool = True) -> str:
    return FUNNEL.replace("{tracking}", "true" if tracking else "false")


def send_invite(
    sessions: sessionmaker[Session], settings: EngineSettings, sink: SmtpSink, tracking: bool = True
) -> Received:
    """Publish the funnel, enroll Ada on Monday 10:00 and send her the invite."""
    publish(sessions, funnel(tracking), MONDAY)
    subscribe(sessions, ADA, MONDAY)
    event(sessions, ADA, "ebook_downloaded", MONDAY)
    run(sessions, settings, MONDAY, sink=sink)
    [received] = sink.wait_for(1)
    return received


def link(received: Received, text: str) -> str:
    """The href of the link whose text is `text`, as the email has it."""
    match = re.search(rf'<a href="([^"]+)"[^>]*>{re.escape(text)}</a>', received.html)
    assert match, f"no link {text!r} in the email"
    return match.group(1)


def pixel(received: Received) -> str:
    match = re.search(r'<img src="([^"]+/o/[^"]+)"', received.html)
    assert match, "no open pixel in the email"
    return match.group(1)


def clock(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    """Set the time the tracking routes read."""
    monkeypatch.setattr("app.web.tracking.utcnow", lambda: now)


def hits(sessions: sessionmaker[Session]) -> list[TrackingHit]:
    with sessions() as s:
        return list(s.scalars(select(TrackingHit).order_by(TrackingHit.id)))


def events(sessions: sessionmaker[Session], type: str) -> list[Event]:
    with sessions() as s:
        return list(s.scalars(select(Event).where(Event.type == type).order_by(Event.id)))
