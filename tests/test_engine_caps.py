"""Rule 3: caps hold across funnels; the higher priority goes first; deferred mail
goes out as soon as the caps allow. Over a simulated month, through a real SMTP sink."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import event, messages, publish, run, subscribe

WELCOME = """
key: welcome-series
name: Welcome series
topic: nurture
priority: 10
entry: {on: signed_up}
stages:
  - key: onboarding
    emails:
      - {template: ebook-welcome, after: 0m}
      - {template: video1-invite, after: 1d}
      - {template: quiz-invite, after: 2d}
      - {template: video2-invite, after: 3d}
    transitions: [{after: 30d, to: done}]
  - key: done
    transitions: [{after: 30d, to: onboarding}]
"""

PROMO = """
key: spring-promo
name: Spring promotion
topic: newsletter
priority: 1
entry: {on: signed_up}
stages:
  - key: promo
    emails:
      - {template: demo-invite, after: 0m}
      - {template: contact-invite, after: 1d}
      - {template: contact-reminder, after: 2d}
    transitions: [{after: 30d, to: promo}]
"""

CONTACTS = [f"reader{i}@example.com" for i in range(6)]


@pytest.fixture
def capped(settings: EngineSettings) -> EngineSettings:
    settings.global_caps = EngineSettings.from_config(
        {**_config_of(settings), "GLOBAL_CAPS": "1/1d,3/7d"}
    ).global_caps
    return settings


def _config_of(settings: EngineSettings) -> dict[str, object]:
    return {
        "PUBLIC_URL": settings.public_url,
        "SECRET_KEY": settings.secret_key,
        "MAIL_FROM": settings.mail_from,
        "TEMPLATES_DIR": str(settings.templates.directory),
        "SMTP_HOST": "x",
        "SMTP_PORT": 25,
    }


def test_it_never_exceeds_the_caps_over_a_month_of_competing_funnels(sessions, capped, smtp_sink):
    start = at("2026-03-02 08:00")
    publish(sessions, WELCOME, start)
    publish(sessions, PROMO, start)
    for i, email in enumerate(CONTACTS):
        subscribe(sessions, email, start)
        subscribe(sessions, email, start, topic="newsletter")
        event(sessions, email, "signed_up", start + timedelta(hours=i))

    now = start
    while now <= start + timedelta(days=30):
        run(sessions, capped, now, sink=smtp_sink)
        now += timedelta(hours=2)

    sends: dict[int, list] = defaultdict(list)
    for m in messages(sessions):
        if m.status == "sent":
            sends[m.contact_id].append(m.sent_at)
    assert len(smtp_sink.messages) == sum(len(v) for v in sends.values())
    for times in sends.values():
        times.sort()
        for i, t in enumerate(times):
            assert sum(1 for u in times[: i + 1] if u > t - timedelta(days=1)) <= 1
            assert sum(1 for u in times[: i + 1] if u > t - timedelta(days=7)) <= 3
        # As many as the caps allow: 3 in the first week, then the pending ones go.
        assert len(times) >= 7
    # Nothing was lost: every message is either sent or still deferred, none failed.
    statuses = {m.status for m in messages(sessions)}
    assert statuses <= {"sent", "deferred", "scheduled"}


def test_it_sends_the_higher_priority_funnel_first_when_both_are_due(sessions, capped, smtp_sink):
    start = at("2026-03-02 08:00")
    publish(sessions, PROMO, start)
    publish(sessions, WELCOME, start)
    subscribe(sessions, "ada@example.com", start)
    subscribe(sessions, "ada@example.com", start, topic="newsletter")
    event(sessions, "ada@example.com", "signed_up", start)
    run(sessions, capped, start, sink=smtp_sink)

    [first] = smtp_sink.messages
    assert first.message["Subject"].startswith('Your copy of "Seven Fundamentals"')
    promo = next(m for m in messages(sessions) if m.template == "demo-invite")
    assert promo.status == "deferred" and promo.due_at == start + timedelta(days=1)
    assert "cap 1/1d" in (promo.reason or "")
    run(sessions, capped, start + timedelta(days=1), sink=smtp_sink)
    assert [r.message["Subject"] for r in smtp_sink.messages][1] in (
        "See it working on a real pipeline",
        "The 6-minute version of chapter 1",
    )


def test_it_obeys_the_recipients_own_frequency_choice(sessions, settings, smtp_sink):
    from app.services import contacts as contacts_svc

    start = at("2026-03-02 08:00")
    publish(sessions, WELCOME, start)
    subscribe(sessions, "ada@example.com", start)
    with sessions.begin() as s:
        contact = contacts_svc.find(s, "ada@example.com")
        contacts_svc.set_frequency(s, contact, "1/7d", start, contacts_svc.Actor(source="test"))
    event(sessions, "ada@example.com", "signed_up", start)
    run(sessions, settings, start, sink=smtp_sink)
    for day in range(0, 7):
        run(sessions, settings, start + timedelta(days=day, hours=23), sink=smtp_sink)
    assert len(smtp_sink.messages) == 1
    run(sessions, settings, start + timedelta(days=7), sink=smtp_sink)  # (t-7d, t] frees it
    assert len(smtp_sink.messages) == 2
