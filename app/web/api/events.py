"""Events: one at a time, or batches of up to 1,000 answered item by item.

Accepted means stored: the answer (202) comes after the commit. `id` is the
client's idempotency key per contact, so a retried request stores nothing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import clock, database
from app.services.funnels import LiveFunnel, live_funnels
from app.services.ingest import ingest_event
from app.web.api import bp
from app.web.api.errors import ApiError
from app.web.api.schemas import BatchEnvelope, BatchItemOut, BatchOut, ErrorBody, EventIn, EventOut
from app.web.api.wire import json_body, parse, respond

log = logging.getLogger(__name__)


def _ingest(session: Session, item: EventIn, now: datetime, funnels: list[LiveFunnel]) -> EventOut:
    ingested = ingest_event(
        session,
        email=item.email,
        type=item.type,
        properties=item.properties,
        occurred_at=item.occurred_at,
        now=now,
        client_id=item.id,
        source="api",
        funnels=funnels,
    )
    return EventOut(
        status="accepted" if ingested.created else "duplicate", event_id=ingested.event.id
    )


@bp.post("/events")
def post_event() -> Response:
    item = parse(EventIn, json_body())
    now, session = clock.utcnow(), database.session()
    result = _ingest(session, item, now, live_funnels(session))
    session.commit()
    return respond(result, 202)


@bp.post("/events/batch")
def post_batch() -> Response:
    """Validate every item, store the good ones in one transaction, answer for each.

    A bad item is reported by index and does not stop the others. The live funnels
    are read once for the whole batch rather than once per event.
    """
    items = _items(json_body())
    now, session = clock.utcnow(), database.session()
    funnels = live_funnels(session)
    results = [_batch_item(session, index, raw, now, funnels) for index, raw in enumerate(items)]
    session.commit()
    counts = {
        status: sum(r.status == status for r in results)
        for status in ("accepted", "duplicate", "error")
    }
    return respond(
        BatchOut(
            accepted=counts["accepted"],
            duplicates=counts["duplicate"],
            errors=counts["error"],
            results=results,
        ),
        202,
    )


def _items(data: Any) -> list[Any]:
    """The batch's items, once the envelope is right ({"events": [...]}, 1 to 1,000).

    The items' contents are left to _batch_item, so that a bad item fails alone
    instead of failing the batch.
    """
    if not (isinstance(data, dict) and isinstance(data.get("events"), list)):
        parse(BatchEnvelope, data)  # raises: this is not {"events": [...]}
    items: list[Any] = data["events"]
    parse(BatchEnvelope, {**data, "events": [None] * len(items)})
    return items


def _batch_item(
    session: Session, index: int, raw: Any, now: datetime, funnels: list[LiveFunnel]
) -> BatchItemOut:
    try:
        item = parse(EventIn, raw, prefix=f"events[{index}]")
    except ApiError as error:
        return BatchItemOut(index=index, status="error", error=ErrorBody(**error.body()))
    try:
        # A savepoint per item: if applying one event fails, it leaves nothing behind
        # and the rest of the batch still commits.
        with session.begin_nested():
            result = _ingest(session, item, now, funnels)
    except SQLAlchemyError:
        raise  # the database itself is in trouble: fail the batch, the client retries
    except Exception:
        log.exception(
            "event %d of a batch from %s could not be applied", index, request.remote_addr
        )
        body = ErrorBody(
            code="internal",
            message="this event could not be applied; it has been logged",
            field=None,
        )
        return BatchItemOut(index=index, status="error", error=body)
    return BatchItemOut(index=index, status=result.status, event_id=result.event_id)
