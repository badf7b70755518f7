"""Reading request bodies and writing responses, safely for any input.

Anything a client sends ends up in PostgreSQL or SQLite, so besides being valid
JSON it must be storable: no NUL characters or lone surrogates (PostgreSQL text
and JSONB refuse them, UTF-8 cannot encode them), no NaN or Infinity (JSONB refuses
them), and no nesting deeper than MAX_DEPTH (serialising it again could overflow
the stack). Each is a 400 or 422 here rather than a 500 at commit.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.wrappers import Response

from app.web.api.errors import UNSTORABLE, ApiError, clean, field_path, from_validation

__all__ = ["clean"]

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 32


def respond(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, mimetype="application/json")


def malformed(why: str) -> ApiError:
    return ApiError(400, "malformed_json", f"the request body is not valid JSON: {why}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


_REQUIRED = object()


def json_body(default: Any = _REQUIRED) -> Any:
    """The parsed JSON body; `default` for an empty body (else an empty body is a 400).

    Parsed whatever the Content-Type says: clients that forget the header should get
    their request handled, not a 415.
    """
    raw = request.get_data(cache=True)  # raises 413 past the body limit
    if not raw.strip():
        if default is not _REQUIRED:
            return default
        raise malformed("the body is empty; send a JSON object")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise malformed("it is not UTF-8 text") from None
    except RecursionError:
        raise malformed("it nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and numbers with too many digits
        raise malformed(str(exc)) from None


def text_body() -> str:
    """The body as text (a funnel definition in YAML or JSON)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(
            400, "bad_request", "the body is empty: send the funnel definition, in YAML or JSON"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "bad_request", f"the body is not UTF-8 text (byte {exc.start})"
        ) from None


def unstorable(value: Any, prefix: str = "") -> ApiError | None:
    """The first part of a parsed JSON value that cannot be stored, as a 422; or None.

    Iterative, so a deep value cannot overflow the stack while being checked.
    """
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            return ApiError(
                422,
                "invalid",
                f"{field_path(loc, prefix)}: nests more than {MAX_DEPTH} levels deep",
                field_path(loc, prefix),
            )
        if isinstance(item, str) and UNSTORABLE.search(item):
            return _bad_text(loc, prefix, "a text value")
        if isinstance(item, dict):
            for key, child in item.items():
                if UNSTORABLE.search(key):
                    return _bad_text(loc, prefix, "a field name")
                stack.append((child, (*loc, key)))
        elif isinstance(item, list):
            stack.extend((child, (*loc, i)) for i, child in enumerate(item))
    return None


def _bad_text(loc: tuple[int | str, ...], prefix: str, what: str) -> ApiError:
    field = field_path(loc, prefix)
    where = f"{field}: " if field else ""
    return ApiError(
        422,
        "invalid",
        f"{where}{what} holds a NUL character or an unpaired surrogate, which cannot be stored",
        field,
    )


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate parsed JSON against `model`; ApiError(422) naming the first bad field."""
    problem = unstorable(data, prefix)
    if problem is not None:
        raise problem
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, prefix) from None
