"""Rules 2, 5 and 6 through a real SMTP server: consent at send time, retries and
bounces, send windows in the contact's timezone, timeouts."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.delivery.render import Templates
from app.models import ConsentChange, Contact, MessageAttempt
from app.services import contacts as contacts_svc
from tests.conftest import at
from tests.helpers import ROOT, enrollment, event, messages, publish, run, subscribe

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
ADA = "ada@example.com"

WINDOWED = """
key: tokyo-test
name: Window test
topic: nurture
entry: {on: signed_up}
exit: {on: purchase_completed, as: converted}
send_window: {days: mon-fri, from: "09:00", to: "17:00", timezone: contact}
stages:
  - key: only
    emails: [{template: ebook-welcome, after: 0m}, {template: video1-invite, after: 3d}]
"""


def start_journey(sessions, start, **attributes):
    publish(sessions, FUNNEL, start)
    subscribe(sessions, ADA, start, timezone="Europe/London", **attributes)
    event(sessions, ADA, "ebook_downloaded", start, ebook="seven-fundamentals")


def test_it_mails_a_tokyo_contact_only_in_their_local_window(sessions, settings, smtp_sink):
    monday_evening_tokyo = at("2026-03-02 10:00")  # 19:00 in Tokyo
    publish(sessions, WINDOWED, monday_evening_tokyo)
    subscribe(sessions, ADA, monday_evening_tokyo, timezone="Asia/Tokyo")
    event(sessions, ADA, "signed_up", monday_evening_tokyo)

    run(sessions, settings, monday_evening_tokyo, sink=smtp_sink)
    assert smtp_sink.messages == []
    [welcome, _] = messages(sessions, ADA)
    assert welcome.due_at == at("2026-03-03 00:00")  # Tuesday 09:00 in Tokyo
    run(sessions, settings, at("2026-03-02 23:59"), sink=smtp_sink)
    assert smtp_sink.messages == []
    run(sessions, settings, at("2026-03-03 00:00"), sink=smtp_sink)
    assert len(smtp_sink.messages) == 1

    # The second email falls due on Thursday 19:00 Tokyo time and waits for Friday 09:00.
    for hour in range(0, 72):
        run(sessions, settings, at("2026-03-05 10:00") + timedelta(hours=hour), sink=smtp_sink)
    sent = [m for m in messages(sessions, ADA) if m.status == "sent"]
    assert len(sent) == 2
    for m in sent:
        local = m.sent_at.astimezone(ZoneInfo("Asia/Tokyo"))
        assert local.weekday() < 5 and 9 <= local.hour < 17
    assert sent[1].sent_at == at("2026-03-06 00:00")


def test_it_never_sends_what_was_queued_before_an_unsubscribe(sessions, settings, smtp_sink):
    start = at("2026-03-02 10:00")
    start_journey(sessions, start)
    run(sessions, settings, start, sink=smtp_sink)
    with sessions.begin() as s:
        contact = contacts_svc.find(s, ADA)
        contacts_svc.set_status(
            s,
            contact,
            "unsubscribed",
            start + timedelta(hours=1),
            contacts_svc.Actor(source="test"),
        )
    run(sessions, settings, start + timedelta(days=2), sink=smtp_sink)
    assert len(smtp_sink.messages) == 1
    invite = next(m for m in messages(sessions, ADA) if m.template == "video1-invite")
    assert (invite.status, invite.reason) == ("suppressed", "contact is unsubscribed")


def test_it_does_not_mail_a_topic_the_contact_never_subscribed_to(sessions, settings, smtp_sink):
    start = at("2026-03-02 10:00")
    publish(sessions, FUNNEL, start)
    event(sessions, ADA, "ebook_downloaded", start, ebook="seven-fundamentals")
    run(sessions, settings, start, sink=smtp_sink)
    assert smtp_sink.messages == []
    assert messages(sessions, ADA)[0].reason == "not subscribed to topic 'nurture'"


def test_it_retries_a_temporary_failure_and_sends_once(sessions, settings, smtp_sink):
    start = at("2026-03-02 10:00")
    start_journey(sessions, start)
    smtp_sink.fail_next_data("451 4.3.0 Try again later")
    report = run(sessions, settings, start, sink=smtp_sink)
    assert report.counts["retry"] == 1 and smtp_sink.messages == []
    [welcome, _] = messages(sessions, ADA)
    assert welcome.status == "deferred" and welcome.due_at == start + timedelta(minutes=1)

    run(sessions, settings, start + timedelta(minutes=1), sink=smtp_sink)
    run(sessions, settings, start + timedelta(minutes=2), sink=smtp_sink)
    assert len(smtp_sink.messages) == 1
    [welcome, _] = messages(sessions, ADA)
    assert (welcome.status, welcome.attempts) == ("sent", 2)
    with sessions() as s:
        outcomes = s.scalars(
            select(MessageAttempt.outcome)
            .where(MessageAttempt.message_id == welcome.id)
            .order_by(MessageAttempt.id)
        ).all()
    assert outcomes == ["retry", "sent"]


def test_it_retries_after_a_lost_connection(sessions, settings, smtp_sink):
    start = at("2026-03-02 10:00")
    start_journey(sessions, start)
    smtp_sink.drop_connection_next()
    assert run(sessions, settings, start, sink=smtp_sink).counts["retry"] == 1
    run(sessions, settings, start + timedelta(minutes=1), sink=smtp_sink)
    assert len(smtp_sink.messages) == 1


def test_it_gives_up_after_three_days_of_temporary_failures(sessions, settings, smtp_sink):
    start = at("2026-03-02 10:00")
    start_journey(sessions, start)
    smtp_sink.fail_next_data("451 4.3.0 Try again later", times=1000)
    now = start
    while now < start + timedelta(days=4):
        run(sessions, settings, now, sink=smtp_sink)
        now += timedelta(minutes=30)
    welcome = messages(sessions, ADA)[0]
    assert welcome.status == "failed" and "gave up after 3 days" in welcome.reason
    assert smtp_sink.messages == []


def test_it_bounces_a_refused_recipient_and_mails_them_no_more(sessions, settings, smtp_sink):
    start = at("2026-03-02 10:00")
    start_journey(sessions, start)
    smtp_sink.reply_rcpt(ADA, "550 5.1.1 No such user")
    run(sessions, settings, start, sink=smtp_sink)
    welcome = messages(sessions, ADA)[0]
    assert welcome.status == "failed" and welcome.reason.startswith("hard bounce: 550")
    with sessions() as s:
        contact = s.scalar(select(Contact).where(Contact.email == ADA))
        assert contact.status == "bounced"
        ledger = s.scalars(
            select(ConsentChange).where(ConsentChange.contact_id == contact.id)
        ).all()
        assert [(c.source, c.before, c.after) for c in ledger if c.field == "status"] == [
            ("bounce", "active", "bounced")
        ]
    smtp_sink.reply_rcpt(ADA, None)
    run(sessions, settings, start + timedelta(days=2), sink=smtp_sink)
    assert smtp_sink.messages == []
    assert messages(sessions, ADA)[1].status == "suppressed"


def test_it_moves_a_quiet_reader_to_dormant_after_fourteen_days(sessions, settings, smtp_sink):
    start = at("2026-03-02 10:00")
    start_journey(sessions, start)
    run(sessions, settings, start, sink=smtp_sink)
    run(sessions, settings, at("2026-03-04 10:00"), sink=smtp_sink)
    run(sessions, settings, at("2026-03-16 09:59"), sink=smtp_sink)
    assert enrollment(sessions, ADA).stage_key == "read_ebook"
    run(sessions, settings, at("2026-03-16 10:00"), sink=smtp_sink)
    moved = enrollment(sessions, ADA)
    assert (moved.stage_key, moved.stage_entered_at) == ("dormant", at("2026-03-16 10:00"))
    assert [r.message["Subject"] for r in smtp_sink.messages][-1] == "Was the eBook any use?"


def test_it_fails_a_message_whose_template_cannot_render_and_sends_nothing(
    sessions, settings, smtp_sink, tmp_path
):
    # The same template name, broken: it uses a variable no contact has.
    (tmp_path / "ebook-welcome.html").write_text(
        "---\nsubject: Hi {{ contact.company_name }}\n---\n<p>x</p>\n"
    )
    settings.templates = Templates(tmp_path)
    start = at("2026-03-02 10:00")
    start_journey(sessions, start)
    run(sessions, settings, start, sink=smtp_sink)
    assert smtp_sink.messages == []
    broken = messages(sessions, ADA)[0]
    assert broken.status == "failed" and "company_name" in broken.reason


def test_it_picks_up_an_edited_template_without_a_restart(tmp_path):
    import os
    import shutil

    from app.delivery.render import sample_context

    for name in ("_layout.html", "ebook-welcome.html"):
        shutil.copy(ROOT / "templates" / "email" / name, tmp_path / name)
    templates = Templates(tmp_path)
    assert templates.render("ebook-welcome", sample_context()).subject.startswith("Your copy")
    path = tmp_path / "ebook-welcome.html"
    path.write_text(path.read_text().replace("Your copy of", "Here is"))
    os.utime(
        path, (path.stat().st_atime, path.stat().st_mtime + 5)
    )  # a later mtime, as an edit has
    assert templates.render("ebook-welcome", sample_context()).subject.startswith("Here is")
