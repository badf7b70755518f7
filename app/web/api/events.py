"""Events: one at a time, or batches of up to 1,000 answered item by item.

Accepted means stored: the answer (202) comes after the commit. `id` is the
client's idempotency key per contact, so a retried request stores nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import request
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import clock, database
from app.db import begin_write
from app.services.funnels import LiveFunnel, live_funnels
from app.services.ingest import ingest_event
from app.services.ingest_batch import Item, ingest_batch, processing_order
from app.web.api import bp
from app.web.api.errors import ApiError
from app.web.api.schemas import BatchEnvelope, BatchItemOut, BatchOut, ErrorBody, EventIn, EventOut
from app.web.api.wire import json_body, parse, respond

log = logging.getLogger(__name__)
T = TypeVar("T")
ATTEMPTS = 3  # a batch that loses a race with a concurrent one is tried again
# PostgreSQL's deadlock_detected and serialization_failure: nothing was stored, and
# the same transaction run again will most likely pass.
RETRYABLE_STATES = {"40P01", "40001"}


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

    A bad item is reported by index and does not stop the others. The answer comes
    after the commit; if the transaction fails, the answer is an error (500), never
    a 202 for events that were not stored.
    """
    items = _items(json_body())
    now, session = clock.utcnow(), database.session()
    checked = [_check(index, raw) for index, raw in enumerate(items)]
    good = {index: item for index, item in enumerate(checked) if isinstance(item, EventIn)}
    stored = _retrying(session, lambda: _store_all(session, good, now))
    results = [
        stored[index] if isinstance(item, EventIn) else item.model_dump()
        for index, item in enumerate(checked)
    ]
    return respond(_summary(results), 202)


def _retrying(session: Session, attempt: Callable[[], T]) -> T:
    """`attempt()` (which commits), run again after losing a race with a concurrent
    batch: a unique index (the same new contact enrolled by both) or a deadlock."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except (IntegrityError, OperationalError) as exc:
            session.rollback()
            state = getattr(exc.orig, "sqlstate", None)
            if number == ATTEMPTS or not (
                isinstance(exc, IntegrityError) or state in RETRYABLE_STATES
            ):
                raise
            log.warning("a batch lost a race (%s); trying again", type(exc.orig).__name__)
    raise AssertionError("unreachable")


def _store_all(
    session: Session, good: dict[int, EventIn], now: datetime
) -> dict[int, dict[str, Any]]:
    """Store and apply the valid items, then commit; their answers by index (as
    BatchItemOut's fields: validated once, with the whole answer, in _summary)."""
    indexes = list(good)
    items = [_item(good[index]) for index in indexes]
    try:
        outcomes = ingest_batch(session, items, now)
        results = {
            index: {
                "index": index,
                "status": "accepted" if outcome.created else "duplicate",
                "event_id": outcome.event_id,
                "error": None,
            }
            for index, outcome in zip(indexes, outcomes, strict=True)
        }
    except SQLAlchemyError:
        raise  # the database itself is in trouble: fail the batch, the client retries
    except Exception:
        # An event the engine could not apply (a bug). Start again with each event in
        # a savepoint, so that it alone fails and the rest are stored.
        log.exception("a batch from %s: an event could not be applied", request.remote_addr)
        session.rollback()
        funnels = live_funnels(session)
        order = [indexes[i] for i in processing_order(items, now)]
        results = {
            index: _isolated(session, index, good[index], now, funnels).model_dump()
            for index in order
        }
    session.commit()
    return results


def _item(item: EventIn) -> Item:
    return Item(item.email, item.type, item.properties, item.occurred_at, item.id)


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


def _isolated(
    session: Session, index: int, item: EventIn, now: datetime, funnels: list[LiveFunnel]
) -> BatchItemOut:
    begin_write(session)  # so the savepoint below nests in a transaction on SQLite too
    try:
        with session.begin_nested():
            result = _ingest(session, item, now, funnels)
            return BatchItemOut(index=index, status=result.status, event_id=result.event_id)
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("event %d of a batch could not be applied", index)
        message = "this event could not be applied; it has been logged"
        return BatchItemOut(
            index=index, status="error", error=ErrorBody(code="internal", message=message)
        )


def _summary(results: list[dict[str, Any]]) -> BatchOut:
    """The answer. (One model_validate of plain data, which pydantic does in native
    code: a thousand BatchItemOut built one by one would cost tens of ms.)"""
    counts = Counter(r["status"] for r in results)
    return BatchOut.model_validate(
        {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "errors": counts["error"],
            "results": results,
        }
    )
