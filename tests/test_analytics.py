"""Funnel stats over time, from a week of real engine activity (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.delivery.transport import MemoryTransport
from app.engine.errors import TransportError
from app.models import Contact, FunnelVersion, Message
from app.services import contacts as contacts_svc
from app.services import tracking as tracking_svc
from app.services.analytics import FunnelStats, StageStats, funnel_stats
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import event, messages, publish, run, subscribe

D0 = at("2026-03-02 00:00")  # a Monday
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
FUNNEL = """
key: stats
name: Stats
topic: nurture
entry: {on: signed_up}
exit: [{on: purchased, as: converted}, {on: complained, as: lost}]
caps: [{max: 1, per: 1d}]
stages:
  - key: welcome
    emails: [{template: ebook-welcome, after: 0m}, {template: video1-invite, after: 1h}]
    transitions: [{on: email_clicked, to: engaged}]
  - key: engaged
    emails: [{template: quiz-invite, after: 0m}]
"""


def day(n: int, clock: str) -> datetime:
    return D0 + timedelta(days=n) + (at(f"2026-01-01 {clock}") - at("2026-01-01 00:00"))


def tick(sessions: sessionmaker[Session], settings: EngineSettings, now: datetime) -> None:
    run(sessions, settings, now, transport=MemoryTransport())


def message(sessions: sessionmaker[Session], email: str, template: str) -> Message:
    return next(m for m in messages(sessions, email) if m.template == template)


def hit(
    sessions: sessionmaker[Session], email: str, template: str, kind: str, now: datetime
) -> None:
    sent = message(sessions, email, template)
    with sessions.begin() as s:
        found = tracking_svc.Hit(
            kind=kind,
            contact_id=sent.contact_id,
            message_id=sent.id,
            url="https://example.com/",
            user_agent=BROWSER,
        )
        tracking_svc.record(s, found, now)


def unsubscribe(sessions: sessionmaker[Session], email: str, template: str, now: datetime) -> None:
    sent = message(sessions, email, template)
    with sessions.begin() as s:
        contact = s.scalar(select(Contact).where(Contact.email == email))
        actor = contacts_svc.Actor(source="unsubscribe-page", message_id=sent.id)
        contacts_svc.set_status(s, contact, "unsubscribed", now, actor)


def a_week(sessions: sessionmaker[Session], settings: EngineSettings) -> None:
    """Ada converts, Bob is scanned then unsubscribes, Dan never consented, Cat comes late."""
    publish(sessions, FUNNEL, D0)
    for email in ("ada@example.com", "bob@example.com", "cat@example.com"):
        subscribe(sessions, email, D0)
    event(sessions, "ada@example.com", "signed_up", day(0, "10:00"))
    tick(sessions, settings, day(0, "10:00"))  # Ada's welcome
    event(sessions, "bob@example.com", "signed_up", day(0, "11:00"))
    tick(sessions, settings, day(0, "11:00"))  # Bob's welcome; Ada's invite capped to D1 10:00
    event(sessions, "dan@example.com", "signed_up", day(0, "12:00"))
    tick(sessions, settings, day(0, "12:00"))  # Dan suppressed; Bob's invite capped to D1 11:00
    tick(sessions, settings, day(0, "13:00"))  # Dan's invite suppressed
    tick(sessions, settings, day(1, "10:00"))  # Ada's invite
    tick(sessions, settings, day(1, "11:00"))  # Bob's invite
    hit(
        sessions,
        "bob@example.com",
        "video1-invite",
        "click",
        day(1, "11:00") + timedelta(seconds=4),
    )
    hit(sessions, "ada@example.com", "ebook-welcome", "open", day(1, "11:30"))
    hit(sessions, "ada@example.com", "video1-invite", "click", day(1, "12:00"))  # -> engaged
    tick(sessions, settings, day(1, "12:00"))  # Ada's quiz invite capped to D2 10:00
    event(sessions, "ada@example.com", "purchased", day(2, "09:00"))  # quiz invite cancelled
    unsubscribe(sessions, "bob@example.com", "ebook-welcome", day(2, "14:00"))
    event(sessions, "cat@example.com", "signed_up", day(3, "10:00"))
    tick(sessions, settings, day(3, "10:00"))


def stats(sessions: sessionmaker[Session], **kwargs: object) -> FunnelStats:
    options: dict[str, object] = {"start": D0, "end": D0 + timedelta(days=7), **kwargs}
    with sessions() as s:
        return funnel_stats(s, "stats", **options)  # type: ignore[arg-type]


def test_it_counts_a_week_of_a_funnel_by_day(sessions, settings):
    a_week(sessions, settings)
    found = stats(sessions)

    assert found.buckets == [D0 + timedelta(days=n) for n in range(7)]
    assert found.series == {
        "entered": [3, 0, 0, 1, 0, 0, 0],
        "converted": [0, 0, 1, 0, 0, 0, 0],
        "exited": [0, 0, 1, 0, 0, 0, 0],
        "sent": [2, 2, 0, 1, 0, 0, 0],
        "deferred": [2, 1, 0, 0, 0, 0, 0],
        "suppressed": [2, 0, 0, 0, 0, 0, 0],
        "failed": [0, 0, 0, 0, 0, 0, 0],
        "opens": [0, 1, 0, 0, 0, 0, 0],
        "clicks": [0, 1, 0, 0, 0, 0, 0],
        "unsubscribes": [0, 0, 1, 0, 0, 0, 0],
    }
    assert found.totals["sent"] == 5 and found.totals["entered"] == 4
    assert found.exits == {"converted": 1}
    assert found.bot_hits == {"opens": 0, "clicks": 1}
    assert found.time_to_convert_hours == {"median": 47.0, "p90": 47.0}
    assert found.stages == [
        StageStats("welcome", current=3, entered=4, moved_to={"engaged": 1}),
        StageStats("engaged", current=0, entered=1, moved_to={"exit:converted": 1}),
    ]


def test_it_counts_by_iso_week_from_the_monday_before_the_start(sessions, settings):
    a_week(sessions, settings)
    found = stats(sessions, start=day(2, "15:00"), end=D0 + timedelta(days=14), interval="week")

    assert found.buckets == [D0, D0 + timedelta(days=7)]
    # Only what happened from Wednesday 15:00 on: Cat's entry and welcome.
    assert found.series["entered"] == [1, 0] and found.series["sent"] == [1, 0]
    assert found.totals["converted"] == 0 and found.totals["unsubscribes"] == 0
    assert found.time_to_convert_hours == {"median": None, "p90": None}


def test_it_puts_midnight_in_the_day_it_starts(sessions, settings):
    publish(sessions, FUNNEL, D0)
    event(sessions, "ada@example.com", "signed_up", day(0, "23:59:59.999"))
    event(sessions, "bob@example.com", "signed_up", day(1, "00:00"))
    event(sessions, "cat@example.com", "signed_up", day(2, "00:00"))
    found = stats(sessions, start=D0, end=day(2, "00:00"))
    assert found.series["entered"] == [1, 1]


def test_it_counts_one_version_alone(sessions, settings):
    publish(sessions, FUNNEL, D0)
    event(sessions, "ada@example.com", "signed_up", day(0, "10:00"))
    publish(sessions, FUNNEL.replace("name: Stats", "name: Stats, take two"), day(1, "00:00"))
    event(sessions, "bob@example.com", "signed_up", day(1, "10:00"))
    event(sessions, "cat@example.com", "signed_up", day(1, "11:00"))
    with sessions() as s:
        first, second = s.scalars(select(FunnelVersion.id).order_by(FunnelVersion.number)).all()

    assert stats(sessions, version_id=first).series["entered"][:2] == [1, 0]
    assert stats(sessions, version_id=second).series["entered"][:2] == [0, 2]
    assert stats(sessions).series["entered"][:2] == [1, 2]


def test_it_counts_failures_when_the_engine_gave_up(sessions, settings):
    class Refusing(MemoryTransport):
        def send(self, message: object) -> None:
            raise TransportError("554 no thanks", permanent=True, code=554)

    publish(sessions, FUNNEL, D0)
    subscribe(sessions, "ada@example.com", D0)
    event(sessions, "ada@example.com", "signed_up", day(1, "10:00"))
    run(sessions, settings, day(1, "10:05"), transport=Refusing())
    assert stats(sessions).series["failed"] == [0, 1, 0, 0, 0, 0, 0]


def test_it_answers_in_json_with_iso_times(sessions, settings):
    a_week(sessions, settings)
    data = json.loads(json.dumps(stats(sessions).as_dict()))
    assert data["funnel_key"] == "stats" and data["interval"] == "day"
    assert data["start"] == "2026-03-02T00:00:00+00:00"
    assert data["buckets"][1] == "2026-03-03T00:00:00+00:00"
    assert data["stages"][0] == {
        "key": "welcome",
        "current": 3,
        "entered": 4,
        "moved_to": {"engaged": 1},
    }
    assert data["series"]["sent"] == [2, 2, 0, 1, 0, 0, 0]
    assert data["estimates"] == ["opens"]


def test_it_refuses_what_it_cannot_answer(sessions, settings):
    publish(sessions, FUNNEL, D0)
    with sessions() as s:
        with pytest.raises(LookupError):
            funnel_stats(s, "no-such-funnel", start=D0, end=day(1, "00:00"))
        with pytest.raises(LookupError):
            funnel_stats(s, "stats", start=D0, end=day(1, "00:00"), version_id=999)
        with pytest.raises(ValueError, match="interval"):
            funnel_stats(s, "stats", start=D0, end=day(1, "00:00"), interval="hour")
        with pytest.raises(ValueError, match="after its start"):
            funnel_stats(s, "stats", start=D0, end=D0)
        with pytest.raises(ValueError, match="at most"):
            funnel_stats(s, "stats", start=D0, end=D0 + timedelta(days=5000))
