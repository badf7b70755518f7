"""A rendered email as wire bytes, plus the headers every Nurture email carries (RFC 8058).

Written out directly (headers, then a multipart/alternative body whose two parts are
base64 UTF-8) rather than built from `email.mime` objects and flattened: building and
flattening those cost more than rendering the template, once per email, for bytes
whose every header we produce ourselves. The structure is the one `MIMEMultipart`
would write; tests parse the result with the standard library to hold it to that.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr, parseaddr
from functools import cached_property, lru_cache

from markupsafe import escape

from app.delivery.render import Rendered

CRLF = "\r\n"
MAX_PLAIN_HEADER = 78  # longer or non-ASCII values are folded / RFC 2047-encoded


@dataclass(eq=False)
class Email:
    """One composed email: the envelope and the bytes that go on the wire (CRLF)."""

    mail_from: str  # the envelope sender, an address
    to: str
    raw: bytes = field(repr=False)

    @cached_property
    def message(self) -> Message:
        """The email parsed back (for tests, previews and the console)."""
        return message_from_bytes(self.raw)

    def __getitem__(self, name: str) -> str | None:
        value = self.message[name]
        return None if value is None else str(value)

    @property
    def international(self) -> bool:
        """Does the envelope need SMTPUTF8 (a non-ASCII address)?"""
        return not (self.mail_from.isascii() and self.to.isascii())


def message_id(message_db_id: int, mail_from: str) -> str:
    """The Message-ID of a message row: stable, so every retry carries the same one."""
    return f"<nurture.{message_db_id}@{sender_domain(mail_from)}>"


@lru_cache(maxsize=64)  # MAIL_FROM is one setting: parsed once, not per email
def _sender(mail_from: str) -> tuple[str, str]:
    """The From header (display name encoded when not ASCII) and the bare address."""
    name, addr = parseaddr(mail_from)
    return (formataddr((name, addr), charset="utf-8") if name else addr), addr


def sender_domain(mail_from: str) -> str:
    return _sender(mail_from)[1].rpartition("@")[2] or "nurture.invalid"


def _header(name: str, value: str) -> str:
    value = " ".join(value.split())  # no CR/LF can smuggle a header in
    if value.isascii() and len(name) + len(value) + 2 <= MAX_PLAIN_HEADER:
        return f"{name}: {value}"
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: " + Header(value, charset, header_name=name).encode(linesep=CRLF)


def _part(subtype: str, body: str) -> str:
    encoded = base64.encodebytes(body.encode("utf-8")).decode("ascii").replace("\n", CRLF)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"MIME-Version: 1.0{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}{encoded}"
    )


def compose(
    rendered: Rendered,
    *,
    to: str,
    mail_from: str,
    message_id: str,
    now: datetime,
    unsubscribe_url: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Email:
    """The email on the wire. With `unsubscribe_url` it carries List-Unsubscribe and
    the RFC 8058 one-click header."""
    # "=_" cannot occur in base64 text, so the boundary cannot collide with a part.
    boundary = f"=_nurture_{secrets.token_hex(12)}"
    sender, envelope = _sender(mail_from)
    headers = [
        f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"',
        "MIME-Version: 1.0",
        f"From: {sender}",  # the name is encoded; an international address goes raw
        f"To: {to}",  # raw UTF-8 when international, sent under SMTPUTF8 (RFC 6532)
        _header("Subject", rendered.subject),
        f"Date: {format_datetime(now)}",
        f"Message-ID: {message_id}",
    ]
    if unsubscribe_url is not None:
        headers += [
            f"List-Unsubscribe: <{unsubscribe_url}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ]
    headers += [_header(name, value) for name, value in (extra_headers or {}).items()]
    html = rendered.html
    if rendered.preheader:
        # The preview line inboxes show next to the subject, hidden in the body.
        style = "display:none;max-height:0;overflow:hidden"
        html = f'<div style="{style}">{escape(rendered.preheader)}</div>' + html
    text = CRLF.join(headers) + CRLF + CRLF
    text += f"--{boundary}{CRLF}{_part('plain', rendered.text)}"
    text += f"--{boundary}{CRLF}{_part('html', html)}--{boundary}--{CRLF}"
    return Email(mail_from=envelope, to=to, raw=text.encode("utf-8"))
