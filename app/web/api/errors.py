"""The API's one error format, `{"error": {"code", "message", "field"}}`, and the
handlers that make every failure under /api/v1/ answer in it (never an HTML page)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Blueprint, request
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.web.api.schemas import PATTERN_WORDS

log = logging.getLogger(__name__)

# Codes for the HTTP errors Werkzeug raises on its own (routing, body size, ...).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# Pydantic's wording for the failures a client meets most, put plainly.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "string_type": "should be text",
    "int_type": "should be a whole number",
    "bool_type": "should be true or false",
    "dict_type": "should be an object",
    "model_type": "should be an object",
    "list_type": "should be a list",
    "datetime_type": "should be an ISO 8601 time with offset, like 2026-03-02T09:00:00+00:00",
    "timezone_aware": "should include a UTC offset, like 2026-03-02T09:00:00+00:00",
}


# Characters that PostgreSQL cannot store and UTF-8 cannot encode.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean(text: str) -> str:
    """`text` with NULs and lone surrogates replaced: messages quote client input,
    and an answer holding those could not be encoded."""
    return UNSTORABLE.sub("\ufffd", text)


class ApiError(Exception):
    """An error answer: raise it anywhere in a request; the handler renders it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code = status, code
        self.message, self.field = clean(message), clean(field) if field is not None else None
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field}


def error_response(error: ApiError) -> Response:
    body = json.dumps({"error": error.body(), **error.extra})
    return Response(body, status=error.status, headers=error.headers, mimetype="application/json")


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str | None:
    """`("events", 3, "type")` -> `events[3].type`; the dotted path a client reads."""
    path = prefix
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself" of a mapping entry
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


def describe(detail: ErrorDetails, prefix: str = "") -> ApiError:
    """One pydantic error as a 422 ApiError. Our own validators raise
    PydanticCustomError, whose type becomes the code when it starts with `invalid_`
    (e.g. `invalid_email`); every other problem is `invalid`."""
    kind = detail["type"]
    field = field_path(tuple(detail["loc"]), prefix)
    code = kind if kind.startswith("invalid_") else "invalid"
    subject = field or "the request body"
    if kind in _MESSAGES:
        return ApiError(422, code, f"{subject} {_MESSAGES[kind]}", field)
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(
            str((detail.get("ctx") or {}).get("pattern")), "has the wrong form"
        )
        return ApiError(422, code, f"{subject} {detail['input']!r} {words}", field)
    text = detail["msg"].removeprefix("Value error, ")
    return ApiError(422, code, f"{subject}: {text[:1].lower()}{text[1:]}", field)


def from_validation(exc: ValidationError, prefix: str = "") -> ApiError:
    """The first problem of a ValidationError (clients fix one thing at a time; the
    field says where)."""
    return describe(exc.errors(include_url=False)[0], prefix)


def register(bp: Blueprint) -> None:
    """Install the handlers on the API blueprint (they see only its requests)."""

    @bp.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)

    @bp.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = HTTP_CODES.get(status) or (error.name or "error").lower().replace(" ", "_")
        headers = (
            {"Allow": ", ".join(error.valid_methods)}
            if getattr(error, "valid_methods", None)
            else {}
        )
        message = error.description or error.name
        if status == 413:
            limit = request.max_content_length
            message = f"the request body is larger than this route accepts ({limit} bytes)"
        return error_response(ApiError(status, code, message, headers=headers))

    @bp.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # A bug, not the client's fault: log it with its traceback, answer JSON.
        log.exception("unhandled error in the API")
        return error_response(
            ApiError(500, "internal", "something went wrong on our side; it has been logged")
        )
