"""Events: one at a time, or batches of up to 1,000 answered item by item.

Accepted means stored: the answer (202) comes after the commit. `id` is the
client's idempotency key per contact, so a retried request stores nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from flask import request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import clock, database
from app.db import begin_write
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
    checked = [_check(index, raw) for index, raw in enumerate(items)]
    try:
        results = [_store(session, index, item, now, funnels) for index, item in enumerate(checked)]
    except SQLAlchemyError:
        raise  # the database itself is in trouble: fail the batch, the client retries
    except Exception:
        # An event the engine could not apply (a bug). Start again with each event in
        # a savepoint, so that it alone fails and the rest are stored. Savepoints cost
        # a quarter of the throughput, hence only on this path.
        log.exception("a batch from %s: an event could not be applied", request.remote_addr)
        session.rollback()
        results = [
            _isolated(session, index, item, now, funnels) for index, item in enumerate(checked)
        ]
    session.commit()
    return respond(_summary(results), 202)


def _items(data: Any) -> list[Any]:
    """The batch's items, once the envelope is right ({"events": [...]}, 1 to 1,000).

    The items' contents are left to _check, so that a bad item fails alone instead
    of failing the batch.
    """
    if not (isinstance(data, dict) and isinstance(data.get("events"), list)):
        parse(BatchEnvelope, data)  # raises: this is not {"events": [...]}
    items: list[Any] = data["events"]
    parse(BatchEnvelope, {**data, "events": [None] * len(items)})
    return items


def _check(index: int, raw: Any) -> EventIn | BatchItemOut:
    """The item as an EventIn, or its error answer."""
    try:
        return parse(EventIn, raw, prefix=f"events[{index}]")
    except ApiError as error:
        return BatchItemOut(index=index, status="error", error=ErrorBody(**error.body()))


def _store(
    session: Session,
    index: int,
    item: EventIn | BatchItemOut,
    now: datetime,
    funnels: list[LiveFunnel],
) -> BatchItemOut:
    if isinstance(item, BatchItemOut):
        return item
    result = _ingest(session, item, now, funnels)
    return BatchItemOut(index=index, status=result.status, event_id=result.event_id)


def _isolated(
    session: Session,
    index: int,
    item: EventIn | BatchItemOut,
    now: datetime,
    funnels: list[LiveFunnel],
) -> BatchItemOut:
    begin_write(session)  # so the savepoint below nests in a transaction on SQLite too
    try:
        with session.begin_nested():
            return _store(session, index, item, now, funnels)
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("event %d of a batch could not be applied", index)
        message = "this event could not be applied; it has been logged"
        return BatchItemOut(
            index=index, status="error", error=ErrorBody(code="internal", message=message)
        )


def _summary(results: list[BatchItemOut]) -> BatchOut:
    counts = Counter(r.status for r in results)
    return BatchOut(
        accepted=counts["accepted"],
        duplicates=counts["duplicate"],
        errors=counts["error"],
        results=results,
    )
