"""The SMTP sink behaves like a real server, including the failures we script."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from tests.support.smtp import SmtpSink


def _message(to: str = "alice@example.com", subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "news@nurture.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Plain body")
    msg.add_alternative("<p>HTML body</p>", subtype="html")
    return msg


def _send(sink: SmtpSink, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        return client.send_message(msg)


def test_it_receives_a_message_with_its_envelope(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, _message(subject="Welcome"))

    [received] = smtp_sink.wait_for(1)
    assert received.mail_from == "news@nurture.test"
    assert received.rcpt_tos == ("alice@example.com",)
    assert received.message["Subject"] == "Welcome"
    assert received.text.strip() == "Plain body"
    assert "<p>HTML body</p>" in received.html


def test_it_refuses_a_scripted_recipient_every_time(smtp_sink: SmtpSink) -> None:
    smtp_sink.reply_rcpt("Gone@Example.com", "550 5.1.1 No such user")

    for _ in range(2):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            _send(smtp_sink, _message(to="gone@example.com"))
        assert caught.value.recipients["gone@example.com"] == (550, b"5.1.1 No such user")

    assert smtp_sink.messages == []
    assert [r.command for r in smtp_sink.refusals] == ["RCPT", "RCPT"]


def test_it_accepts_the_other_recipients_of_a_message(smtp_sink: SmtpSink) -> None:
    smtp_sink.reply_rcpt("gone@example.com", "550 5.1.1 No such user")
    msg = _message(to="alice@example.com, gone@example.com")

    refused = _send(smtp_sink, msg)

    assert refused == {"gone@example.com": (550, b"5.1.1 No such user")}
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("alice@example.com",)


def test_it_fails_data_once_then_accepts(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next_data("451 4.3.0 Try again later", times=1)

    with pytest.raises(smtplib.SMTPDataError) as caught:
        _send(smtp_sink, _message())
    assert caught.value.smtp_code == 451
    assert smtp_sink.messages == []

    _send(smtp_sink, _message())
    assert len(smtp_sink.wait_for(1)) == 1


def test_it_drops_the_connection_without_answering(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_connection_next()

    with pytest.raises(smtplib.SMTPServerDisconnected):
        _send(smtp_sink, _message())
    assert smtp_sink.messages == []

    # Only the next connection is dropped; the one after it goes through.
    _send(smtp_sink, _message())
    assert len(smtp_sink.wait_for(1)) == 1


@pytest.mark.parametrize("at", ["mail", "rcpt"])
def test_it_can_drop_the_connection_earlier(smtp_sink: SmtpSink, at: str) -> None:
    smtp_sink.drop_connection_next(at=at)  # type: ignore[arg-type]

    with pytest.raises(smtplib.SMTPServerDisconnected):
        _send(smtp_sink, _message())


def test_it_times_out_waiting_with_a_clear_message(smtp_sink: SmtpSink) -> None:
    with pytest.raises(AssertionError, match="expected 1 message"):
        smtp_sink.wait_for(1, timeout=0.1)


def test_it_clears_what_it_received(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, _message())
    smtp_sink.wait_for(1)

    smtp_sink.clear()

    assert smtp_sink.messages == []


def test_it_runs_two_sinks_side_by_side() -> None:
    with SmtpSink() as one, SmtpSink() as two:
        assert one.port != two.port
        _send(two, _message())
        assert len(two.wait_for(1)) == 1
        assert one.messages == []
