"""The wire bytes the composer writes read back, with the standard library, as the
email a mail client would show: headers, both parts, RFC 8058, encodings."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from app.delivery.compose import compose, message_id
from app.delivery.render import Rendered
from tests.conftest import at

NOW = at("2026-03-03 10:00")


def read(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def rendered(subject: str = "Welcome, Ada", preheader: str | None = None) -> Rendered:
    html = "<p>Hello <b>Ada</b> — café</p>"
    return Rendered(subject=subject, html=html, text="Hello Ada — café\n", preheader=preheader)


def test_it_writes_both_parts_and_the_one_click_headers():
    email = compose(
        rendered(preheader="Ten minutes to read"),
        to="ada@example.com",
        mail_from="Nurture <hello@example.com>",
        message_id=message_id(42, "Nurture <hello@example.com>"),
        unsubscribe_url="https://n.example.com/u/tok",
        now=NOW,
    )
    assert email.mail_from == "hello@example.com" and email.to == "ada@example.com"
    head, _, body = email.raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in body.split(b"\r\n"))
    # Headers fold where they can; a link has no space to fold at (RFC 5322: 998 max).
    assert all(len(line) <= 78 or b"://" in line for line in head.split(b"\r\n"))
    assert b"\n" not in email.raw.replace(b"\r\n", b"")  # CRLF only, as SMTP wants
    msg = read(email.raw)
    assert msg["From"] == "Nurture <hello@example.com>"
    assert msg["Subject"] == "Welcome, Ada"
    assert msg["Message-ID"] == "<nurture.42@example.com>"
    assert msg["List-Unsubscribe"] == "<https://n.example.com/u/tok>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Date"] == "Tue, 03 Mar 2026 10:00:00 +0000"
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and plain.get_content() == "Hello Ada — café\n"
    assert html is not None and html.get_content().endswith("<p>Hello <b>Ada</b> — café</p>")
    assert "Ten minutes to read" in html.get_content()  # the hidden preheader


def test_it_encodes_non_ascii_and_folds_long_subjects():
    long_subject = "Your copy of Seven Fundamentals of Pipeline Growth is here, " * 3
    email = compose(
        rendered(subject=long_subject.strip()),
        to="zoë@exämple.com",
        mail_from="Équipe Nurture <hello@example.com>",
        message_id="<x@example.com>",
        now=NOW,
        extra_headers={"X-Nurture-Test": "héllo"},
    )
    assert email.international
    msg = read(email.raw)
    assert msg["Subject"] == long_subject.strip()
    assert msg["From"] == "Équipe Nurture <hello@example.com>"
    assert msg["To"] == "zoë@exämple.com"
    assert msg["X-Nurture-Test"] == "héllo"
    assert msg["List-Unsubscribe"] is None  # none asked for (a confirmation email)
    header_block = email.raw.split(b"\r\n\r\n", 1)[0]
    subject_lines = header_block.split(b"Subject:", 1)[1].split(b"\r\nDate:")[0]
    assert b"\r\n " in subject_lines  # folded, not one 180-character line


def test_it_keeps_a_header_on_one_line_whatever_the_subject_holds():
    email = compose(
        rendered(subject="Hi\r\nBcc: victim@example.com"),
        to="ada@example.com",
        mail_from="hello@example.com",
        message_id="<x@example.com>",
        now=NOW,
    )
    msg = read(email.raw)
    assert msg["Bcc"] is None and msg["Subject"] == "Hi Bcc: victim@example.com"
