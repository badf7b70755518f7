"""A rendered email plus the headers every Nurture email carries (RFC 8058).

Built with the compat32 MIME classes rather than `email.policy.default`: the
modern policy parses every header it is given, which cost more than rendering
the template and is wasted on headers we produce ourselves.
"""

from __future__ import annotations

from datetime import datetime
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, parseaddr

from markupsafe import escape

from app.delivery.render import Rendered


def message_id(message_db_id: int, mail_from: str) -> str:
    """The Message-ID of a message row: stable, so every retry carries the same one."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "nurture.invalid"
    return f"<nurture.{message_db_id}@{domain}>"


def _header(value: str) -> str | Header:
    # Plain ASCII goes as is; anything else is RFC 2047-encoded.
    return value if value.isascii() else Header(value, "utf-8")


def compose(
    rendered: Rendered,
    *,
    to: str,
    mail_from: str,
    message_db_id: int,
    unsubscribe_url: str,
    now: datetime,
    extra_headers: dict[str, str] | None = None,
) -> MIMEMultipart:
    msg = MIMEMultipart("alternative")
    msg["From"] = _header(mail_from)
    msg["To"] = to
    msg["Subject"] = _header(rendered.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(message_db_id, mail_from)
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (extra_headers or {}).items():
        msg[name] = _header(value)
    html = rendered.html
    if rendered.preheader:
        # The preview line inboxes show next to the subject, hidden in the body.
        style = "display:none;max-height:0;overflow:hidden"
        hidden = f'<div style="{style}">{escape(rendered.preheader)}</div>'
        html = hidden + html
    msg.attach(MIMEText(rendered.text, "plain", "utf-8"))
    msg.attach(MIMEText(html, "html", "utf-8"))
    return msg
