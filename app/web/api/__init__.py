"""The HTTP JSON API under /api/v1/.

Routes live in one module per resource; importing them registers them on `bp`.
Every answer is JSON, errors included (see errors.py): unknown paths and methods
are caught by a catch-all route of this blueprint, so even they get the API's
error format and the blueprint's authentication instead of the app's HTML pages.
"""

from __future__ import annotations

from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from app.web.api import auth, contacts, errors, events, funnels, messages, openapi  # noqa: E402

__all__ = ["bp", "contacts", "events", "funnels", "messages", "openapi"]

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
errors.register(bp)
bp.before_request(auth.limit_body)
bp.before_request(auth.authenticate)
from app.web.api import segments  # noqa: E402, F401  (its routes and their OpenAPI operations)


@bp.before_request
def _options() -> Response | None:
    """Answer OPTIONS with the methods the path really has. Flask's own answer would
    also list the catch-all's methods, which match every path."""
    if request.method != "OPTIONS":
        return None
    allowed = _allowed_methods()
    if not allowed:
        return None  # the catch-all answers 404
    extra = ["HEAD"] if "GET" in allowed else []
    return Response(status=200, headers={"Allow": ", ".join([*allowed, *extra, "OPTIONS"])})


@bp.route("/", defaults={"rest": ""}, methods=METHODS)
@bp.route("/<path:rest>", methods=METHODS)
def not_found(rest: str) -> Response:
    """Any path or method the API does not have: 405 with Allow when the path exists
    with other methods, else 404."""
    allowed = _allowed_methods()
    if allowed:
        raise MethodNotAllowed(
            valid_methods=allowed, description=f"{request.path} accepts {', '.join(allowed)}"
        )
    raise errors.ApiError(
        404, "not_found", f"there is no {request.path} in this API: see /api/v1/openapi.json"
    )


def _allowed_methods() -> list[str]:
    adapter = current_app.create_url_adapter(request)
    allowed: list[str] = []
    for method in METHODS:
        try:
            endpoint, _ = adapter.match(request.path, method=method)  # type: ignore[union-attr]
        except HTTPException:
            continue
        if endpoint != "api.not_found":
            allowed.append(method)
    return allowed
