"""Messages: what was scheduled, deferred, sent, failed... filterable, paged by id."""

from __future__ import annotations

import re
from typing import Any

from flask import request
from sqlalchemy import select
from werkzeug.wrappers import Response

from app import database
from app.models import Contact, Funnel, Message
from app.web.api import bp
from app.web.api.errors import ApiError
from app.web.api.schemas import MessageList, MessageOut, MessagesQuery
from app.web.api.wire import parse, respond

_DIGITS = re.compile(r"[0-9]{1,19}\Z")
FILTERS = frozenset(MessagesQuery.model_fields)


def _query_args() -> MessagesQuery:
    """The query string as a MessagesQuery; numbers arrive as text, so they are
    converted here (only plain digits) before the strict model sees them."""
    args: dict[str, Any] = {}
    for name, value in request.args.items():
        if name not in FILTERS:
            raise ApiError(
                422, "invalid", f"{name} is not a filter: use {', '.join(sorted(FILTERS))}", name
            )
        if name in ("limit", "after"):
            if not _DIGITS.match(value):
                raise ApiError(422, "invalid", f"{name} should be a whole number", name)
            args[name] = int(value)
        else:
            args[name] = value
    return parse(MessagesQuery, args)


@bp.get("/messages")
def list_messages() -> Response:
    """Oldest first; `next_after` is the cursor for the next page."""
    q = _query_args()
    query = (
        select(Message, Contact.email, Funnel.key)
        .join(Contact, Contact.id == Message.contact_id)
        .join(Funnel, Funnel.id == Message.funnel_id)
        .order_by(Message.id)
        .limit(q.limit + 1)  # one more than asked tells whether there is a next page
    )
    if q.email:
        query = query.where(Contact.email == q.email)
    if q.funnel:
        query = query.where(Funnel.key == q.funnel)
    if q.status:
        query = query.where(Message.status == q.status)
    if q.after is not None:
        query = query.where(Message.id > q.after)
    rows = database.session().execute(query).all()
    page = rows[: q.limit]
    messages = [
        MessageOut(
            id=m.id,
            email=email,
            funnel=key,
            stage=m.stage_key,
            template=m.template,
            status=m.status,  # type: ignore[arg-type]
            due_at=m.due_at,
            sent_at=m.sent_at,
            attempts=m.attempts,
            reason=m.reason,
        )
        for m, email, key in page
    ]
    next_after = page[-1][0].id if len(rows) > q.limit else None
    return respond(MessageList(messages=messages, next_after=next_after))
