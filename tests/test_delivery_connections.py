"""A worker's SMTP sessions in parallel, against a real server: every email goes out
once, and each outcome is the one of its own email, whichever session carried it."""

from __future__ import annotations

from app.delivery.compose import compose
from app.delivery.render import Rendered
from app.delivery.transport import SmtpSettings, SmtpTransport
from tests.conftest import at


def email(n: int):
    return compose(
        Rendered(subject=f"Email {n}", html=f"<p>{n}</p>", text=f"{n}\n", preheader=None),
        to=f"reader{n}@example.com",
        mail_from="hello@example.com",
        message_id=f"<nurture.{n}@example.com>",
        now=at("2026-03-03 10:00"),
    )


def test_it_sends_a_batch_over_several_sessions(smtp_sink):
    smtp_sink.reply_rcpt("reader7@example.com", "550 5.1.1 No such user")
    smtp_sink.reply_rcpt("reader12@example.com", "452 4.2.2 Mailbox full")
    transport = SmtpTransport(SmtpSettings(smtp_sink.host, smtp_sink.port, connections=4))
    try:
        outcomes = transport.send_all([email(n) for n in range(40)])
    finally:
        transport.close()
    failed = {n: o for n, o in enumerate(outcomes) if o is not None}
    assert sorted(failed) == [7, 12]
    assert failed[7].permanent and failed[7].code == 550
    assert not failed[12].permanent and failed[12].code == 452
    received = sorted(m.message["Subject"] for m in smtp_sink.wait_for(38))
    assert received == sorted(f"Email {n}" for n in range(40) if n not in (7, 12))
    assert smtp_sink.connections_seen() == 4


def test_it_carries_on_after_a_session_is_dropped(smtp_sink):
    smtp_sink.drop_connection_next(at="data")
    transport = SmtpTransport(SmtpSettings(smtp_sink.host, smtp_sink.port, connections=3))
    try:
        outcomes = transport.send_all([email(n) for n in range(9)])
    finally:
        transport.close()
    lost = [o for o in outcomes if o is not None]
    assert len(lost) == 1 and not lost[0].permanent and "connection lost" in lost[0].message
    assert len(smtp_sink.wait_for(8)) == 8
