"""A rendered email plus the headers every Nurture email carries (RFC 8058)."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from markupsafe import escape

from app.delivery.render import Rendered


def message_id(message_db_id: int, mail_from: str) -> str:
    """The Message-ID of a message row: stable, so every retry carries the same one."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "nurture.invalid"
    return f"<nurture.{message_db_id}@{domain}>"


def compose(
    rendered: Rendered, *, to: str, mail_from: str, message_db_id: int, unsubscribe_url: str,
    now: datetime, extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = Address(addr_spec=to)
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(message_db_id, mail_from)
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(rendered.text)
    html = rendered.html
    if rendered.preheader:
        # The preview line inboxes show next to the subject, hidden in the body.
        hidden = f'<div style="display:none;max-height:0;overflow:hidden">{escape(rendered.preheader)}</div>'
        html = hidden + html
    msg.add_alternative(html, subtype="html")
    return msg
