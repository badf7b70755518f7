"""The six-step funnel end to end, through a real SMTP server, time moved by `now`."""

from __future__ import annotations

from app.models import Message
from tests.conftest import at
from tests.helpers import ROOT, enrollment, event, messages, publish, run, subscribe

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
ADA = "ada@example.com"


def subjects(sink) -> list[str]:
    return [r.message["Subject"] for r in sink.messages]


def by_template(rows: list[Message]) -> dict[str, Message]:
    return {m.template: m for m in rows}


def test_it_walks_a_reader_from_ebook_to_conversion(sessions, settings, smtp_sink):
    monday = at("2026-03-02 10:00")  # London is on UTC in early March
    publish(sessions, FUNNEL, monday)
    subscribe(sessions, ADA, monday, first_name="Ada", timezone="Europe/London")

    event(sessions, ADA, "ebook_downloaded", monday, ebook="seven-fundamentals")
    assert enrollment(sessions, ADA).stage_key == "read_ebook"
    run(sessions, settings, monday, sink=smtp_sink)
    assert subjects(smtp_sink) == ['Your copy of "Seven Fundamentals" is here, Ada']

    # Watching video 1 on Tuesday moves Ada on and cancels Wednesday's video invite.
    event(sessions, ADA, "video_watched", at("2026-03-03 12:00"), video="explainer-1", percent=80)
    assert enrollment(sessions, ADA).stage_key == "watched_video1"
    assert by_template(messages(sessions, ADA))["video1-invite"].status == "cancelled"
    run(sessions, settings, at("2026-03-03 13:00"), sink=smtp_sink)
    assert subjects(smtp_sink)[-1] == "How does your pipeline score? (2-minute quiz)"

    # Quiz on Wednesday 10:00: the video 2 email is due at 11:00 but the 1/1d cap holds
    # it until 13:00, a day after the quiz invite.
    event(sessions, ADA, "quiz_taken", at("2026-03-04 10:00"), score=7)
    report = run(sessions, settings, at("2026-03-04 11:00"), sink=smtp_sink)
    assert report.counts["deferred"] == 1 and len(smtp_sink.messages) == 2
    deferred = by_template(messages(sessions, ADA))["video2-invite"]
    assert deferred.status == "deferred" and deferred.due_at == at("2026-03-04 13:00")
    run(sessions, settings, at("2026-03-04 13:00"), sink=smtp_sink)
    assert subjects(smtp_sink)[-1] == "Your quiz results, and the fix that matters most"

    # The contact form converts: the enrollment ends and no more mail goes out.
    event(sessions, ADA, "video_watched", at("2026-03-05 09:00"), video="deep-dive-2", percent=100)
    event(sessions, ADA, "form_submitted", at("2026-03-05 09:30"), form="contact-us")
    done = enrollment(sessions, ADA)
    assert (done.status, done.exit_label) == ("exited", "converted")
    for day in range(6, 40):
        run(
            sessions,
            settings,
            at(f"2026-03-{day:02d} 12:00") if day <= 31 else at(f"2026-04-{day - 31:02d} 12:00"),
            sink=smtp_sink,
        )
    assert len(smtp_sink.messages) == 3
    assert by_template(messages(sessions, ADA))["demo-invite"].status == "cancelled"


def test_it_sends_every_email_with_unsubscribe_headers_and_a_stable_message_id(
    sessions, settings, smtp_sink
):
    monday = at("2026-03-02 10:00")
    publish(sessions, FUNNEL, monday)
    subscribe(sessions, ADA, monday)
    event(sessions, ADA, "ebook_downloaded", monday, ebook="seven-fundamentals")
    run(sessions, settings, monday, sink=smtp_sink)

    [received] = smtp_sink.messages
    [sent] = messages(sessions, ADA)[:1]
    headers = received.message
    assert headers["List-Unsubscribe"].startswith("<http://nurture.test/u/")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Message-ID"] == f"<nurture.{sent.id}@nurture.test>"
    assert "Hi there," in received.text  # no first name: the template's fallback
    assert "http://nurture.test/p/" in received.html
    assert sent.status == "sent" and sent.sent_at == monday


def test_it_does_not_enroll_on_another_ebook_or_twice(sessions, settings, smtp_sink):
    monday = at("2026-03-02 10:00")
    publish(sessions, FUNNEL, monday)
    subscribe(sessions, ADA, monday)
    event(sessions, ADA, "ebook_downloaded", monday, ebook="another-guide")
    assert enrollment(sessions, ADA) is None
    event(sessions, ADA, "ebook_downloaded", monday, ebook="seven-fundamentals")
    event(sessions, ADA, "ebook_downloaded", at("2026-03-02 11:00"), ebook="seven-fundamentals")
    assert len(messages(sessions, ADA)) == 2  # one visit of read_ebook: two steps
