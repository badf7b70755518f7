"""Tracked links and the open pixel: `GET /l/<token>` and `GET /o/<token>`.

A link token (app.tokens, kind "link") names the contact, the message and the
URL the email linked to; the redirect goes to that URL and nowhere else, so a
tampered token, or one pointing anywhere but http(s), gets a "this link does not
work" page instead. Recording never stands between a reader and their link: if it
fails, the failure is logged and the redirect (or the pixel) is served anyway.
Scanners get the same answers as people; app.services.tracking tells them apart.
"""

from __future__ import annotations

import base64
import logging

from flask import Blueprint, current_app, redirect, render_template, request
from flask_babel import get_locale
from werkzeug.wrappers import Response

from app import database, tokens
from app.clock import utcnow
from app.delivery.tracking import safe_target
from app.services import tracking as tracking_svc

log = logging.getLogger(__name__)
bp = Blueprint("tracking", __name__)

# A transparent 1x1 GIF (42 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Nothing cached (each open must reach us), nothing indexed, and the token in our URL
# (it names contact and message) is never passed on as a Referer.
HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _read(kind: str, token: str) -> tokens.TokenData | None:
    config = current_app.config
    return tokens.read(kind, token, config["SECRET_KEY"], config["SECRET_KEY_FALLBACKS"])


def _hit(kind: str, data: tokens.TokenData, url: str | None = None) -> tracking_svc.Hit:
    return tracking_svc.Hit(
        kind=kind,
        contact_id=data.contact_id,
        message_id=data.message_id,
        url=url,
        user_agent=request.user_agent.string or None,
        ip=request.remote_addr,
        method=request.method,
    )


def _record(hit: tracking_svc.Hit) -> None:
    """Record a hit and commit; a failure is logged, never shown to the reader."""
    session = database.session()
    try:
        tracking_svc.record(session, hit, utcnow())
        session.commit()
    except Exception:  # any failure: the reader still gets their link
        session.rollback()
        if current_app.testing:
            raise
        log.exception("recording a %s of message %s failed", hit.kind, hit.message_id)


# Tokens never contain "/", but the routes take any path so that a link mangled by a
# mail client (a trailing slash, a pasted tail) gets the friendly page, not a bare 404.


@bp.get("/l/<path:token>")
def click(token: str) -> Response | tuple[str, int]:
    data = _read("link", token)
    if data is None or data.extra is None or not safe_target(data.extra):
        return _refused()
    _record(_hit(tracking_svc.CLICK, data, data.extra))
    return redirect(data.extra, 302)


@bp.get("/o/<path:token>")
def open_pixel(token: str) -> Response:
    data = _read("open", token)
    if data is not None:
        _record(_hit(tracking_svc.OPEN, data))
    # A refused token still gets an image, so no email shows a broken one.
    return Response(PIXEL, status=200 if data else 404, mimetype="image/gif")


def _refused() -> tuple[str, int]:
    locale = get_locale()
    page = render_template("recipient/not_found.html", lang=locale.language if locale else "en")
    return page, 404


@bp.after_request
def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response
