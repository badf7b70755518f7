"""Bearer API keys on every route but the OpenAPI document, and body size limits."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app, g, request
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from app import clock, credentials, database
from app.models import ApiKey
from app.web.api.errors import ApiError

PUBLIC = frozenset({"api.openapi"})
# Recording every request would make each read a write; a minute is precise enough
# to tell an operator which keys are still in use.
TOUCH_EVERY = timedelta(minutes=1)
# Single objects are small; only a batch of events may use the app's whole limit.
BODY_LIMIT = 1024 * 1024
LARGE_BODIES = frozenset({"api.post_batch"})


def limit_body() -> None:
    """A lower body limit than the app's for every route but the batch (Flask 3.1
    lets a request carry its own), so a 413 comes before a large body is read."""
    app_limit = current_app.config.get("MAX_CONTENT_LENGTH") or BODY_LIMIT
    request.max_content_length = (
        app_limit if request.endpoint in LARGE_BODIES else min(app_limit, BODY_LIMIT)
    )


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="nurture"'}
    )


def authenticate() -> None:
    """Check `Authorization: Bearer <key>`; the key's name goes to `g.api_key_name`."""
    if request.endpoint in PUBLIC:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized(
            "send an API key as `Authorization: Bearer <key>` "
            "(create one with `flask apikeys create NAME`)"
        )
    session = database.session()
    key = credentials.find_api_key(session, token.strip())
    if key is None:
        raise unauthorized("this API key is not valid: it is wrong or has been revoked")
    g.api_key_name = key.name
    _touch(session, key, clock.utcnow())


def _touch(session: Session, key: ApiKey, now: datetime) -> None:
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY:
        return
    # Conditional, so concurrent requests with one key write it once a minute at most.
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_EVERY),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
