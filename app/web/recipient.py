"""Recipient pages: unsubscribe, preference centre, double opt-in (no login).

Every URL carries a signed token (app.tokens) naming the contact, and the message
the link came in. A GET only shows a page (mail scanners prefetch links); only a
POST changes consent, and every change goes through the ledgered setters in
app.services.contacts with the request's IP and user agent.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import get_locale  # type: ignore[import-untyped]
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Response

from app import database, tokens
from app.clock import utcnow
from app.delivery.transport import SmtpTransport
from app.engine.errors import TransportError
from app.i18n import use_contact_locale
from app.models import Contact
from app.services import contacts as contacts_svc
from app.services import optin, preferences
from app.settings import EngineSettings

log = logging.getLogger(__name__)
bp = Blueprint("recipient", __name__)

# What the labels of the frequency choices say; values are caps in GLOBAL_CAPS syntax.
FREQUENCY_LABELS = {
    None: _l("Every email we have for you"),
    "1/1d": _l("At most one email a day"),
    "1/7d": _l("At most one email a week"),
    "1/30d": _l("At most one email a month"),
}
# Headers for every recipient page: nothing cached or indexed, and the token in the
# URL is never sent on as a Referer. The pages need no script at all.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}


def _keys() -> tuple[str, list[str]]:
    """The signing key and the old keys that still verify (SECRET_KEY_FALLBACKS)."""
    return current_app.config["SECRET_KEY"], current_app.config["SECRET_KEY_FALLBACKS"]


class _Link:
    """A verified token: the contact it names and the message it came in."""

    def __init__(self, kind: str, token: str) -> None:
        data = tokens.read(kind, token, *_keys())
        contact = database.session().get(Contact, data.contact_id) if data else None
        if data is None or contact is None:
            abort(404)
        self.token, self.data, self.contact = token, data, contact
        use_contact_locale(contact.locale)

    def actor(self, source: str) -> contacts_svc.Actor:
        agent = request.user_agent.string or None
        return contacts_svc.Actor(
            source=source, ip=request.remote_addr, user_agent=agent, message_id=self.data.message_id
        )

    def preferences_token(self) -> str:
        key, _ = _keys()
        return tokens.make("preferences", key, self.data.contact_id, self.data.message_id)


# -- unsubscribe ------------------------------------------------------------------
# Tokens never contain "/", but the routes take any path so that a link mangled by a
# mail client (a trailing slash, a pasted tail) still gets this blueprint's friendly 404.


@bp.get("/u/<path:token>")
def unsubscribe(token: str) -> str:
    link = _Link("unsubscribe", token)
    return _unsubscribe_page(link, "ask" if _can_unsubscribe(link.contact) else "done")


@bp.post("/u/<path:token>")
def unsubscribe_post(token: str) -> str:
    """Unsubscribe at once; also the RFC 8058 one-click target (no cookies, no CSRF)."""
    link = _Link("unsubscribe", token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if _can_unsubscribe(link.contact):
        actor = link.actor("one-click" if one_click else "unsubscribe-page")
        contacts_svc.set_status(database.session(), link.contact, "unsubscribed", utcnow(), actor)
        database.session().commit()
    return _unsubscribe_page(link, "done")


@bp.post("/u/<token>/resubscribe")
def resubscribe(token: str) -> str:
    link = _Link("unsubscribe", token)
    if link.contact.status != "unsubscribed":
        return _unsubscribe_page(link, "ask" if _can_unsubscribe(link.contact) else "done")
    contacts_svc.set_status(
        database.session(), link.contact, "active", utcnow(), link.actor("resubscribe")
    )
    database.session().commit()
    return _unsubscribe_page(link, "resubscribed")


def _can_unsubscribe(contact: Contact) -> bool:
    # A complaint already stops all mail and is the stronger record; keep it.
    return contact.status not in ("unsubscribed", "complained")


def _unsubscribe_page(link: _Link, state: str) -> str:
    return render_template(
        "recipient/unsubscribe.html",
        contact=link.contact,
        state=state,
        token=link.token,
        preferences_token=link.preferences_token(),
    )


# -- preference centre ------------------------------------------------------------


@bp.get("/p/<path:token>")
def preference_centre(token: str) -> str:
    return _preferences_page(_Link("preferences", token))


@bp.post("/p/<path:token>")
def preference_centre_post(token: str) -> str | tuple[str, int]:
    link = _Link("preferences", token)
    action = request.form.get("action", "save")
    session, contact, now = database.session(), link.contact, utcnow()
    actor = link.actor("preference-centre")
    if action == "unsubscribe" and _can_unsubscribe(contact):
        contacts_svc.set_status(session, contact, "unsubscribed", now, actor)
    elif action == "resubscribe" and contact.status == "unsubscribed":
        contacts_svc.set_status(session, contact, "active", now, actor)
    elif action == "save":
        return _save_preferences(link, actor)
    session.commit()
    return _preferences_page(link, notice=action)


def _save_preferences(link: _Link, actor: contacts_svc.Actor) -> str | tuple[str, int]:
    session, settings = database.session(), EngineSettings.from_config(current_app.config)
    assert settings.smtp is not None
    raw = request.form.get("frequency", "none")
    transport = SmtpTransport(settings.smtp)
    try:
        saved = preferences.save(
            session,
            link.contact,
            topics_on=set(request.form.getlist("topic")),
            frequency=None if raw == "none" else raw,
            now=utcnow(),
            actor=actor,
            settings=settings,
            transport=transport,
            double_opt_in=current_app.config["DOUBLE_OPT_IN_TOPICS"],
        )
    except preferences.InvalidChoice:
        session.rollback()
        return _preferences_page(link, notice="invalid"), 400
    except TransportError as exc:
        # Nothing is kept: a topic must not wait for a confirmation email that never left.
        log.warning("confirmation email to contact %s failed: %s", link.contact.id, exc)
        session.rollback()
        return _preferences_page(link, notice="send-failed"), 503
    finally:
        transport.close()
    session.commit()
    return _preferences_page(link, notice="saved", pending=saved.pending)


def _preferences_page(link: _Link, notice: str | None = None, pending: tuple[str, ...] = ()) -> str:
    contact = link.contact
    choices = preferences.frequency_choices(contact)
    frequencies = [(value or "none", _frequency_label(value)) for value in choices]
    return render_template(
        "recipient/preferences.html",
        contact=contact,
        token=link.token,
        notice=notice,
        topics=preferences.topic_choices(database.session(), contact),
        pending=pending,
        frequencies=frequencies,
        frequency=contact.frequency or "none",
        double_opt_in=current_app.config["DOUBLE_OPT_IN_TOPICS"],
    )


def _frequency_label(value: str | None) -> str:
    label = FREQUENCY_LABELS.get(value)
    return str(label) if label is not None else str(_l("Your own setting (%(caps)s)", caps=value))


# -- double opt-in ----------------------------------------------------------------


@bp.get("/c/<path:token>")
def confirm(token: str) -> str:
    link, topic = _confirm_link(token)
    state = {"pending": "ask", "subscribed": "done"}.get(
        link.contact.topic_status(topic) or "", "gone"
    )
    return _confirm_page(link, topic, state)


@bp.post("/c/<path:token>")
def confirm_post(token: str) -> str:
    link, topic = _confirm_link(token)
    if optin.confirm(
        database.session(), link.contact, topic, utcnow(), link.actor("double-opt-in")
    ):
        database.session().commit()
        return _confirm_page(link, topic, "confirmed")
    state = "done" if link.contact.topic_status(topic) == "subscribed" else "gone"
    return _confirm_page(link, topic, state)


def _confirm_link(token: str) -> tuple[_Link, str]:
    link = _Link("confirm", token)
    if not link.data.extra:
        abort(404)
    return link, link.data.extra


def _confirm_page(link: _Link, topic: str, state: str) -> str:
    return render_template(
        "recipient/confirm.html",
        contact=link.contact,
        topic=topic,
        state=state,
        token=link.token,
        preferences_token=link.preferences_token(),
    )


# -- every page -------------------------------------------------------------------


@bp.context_processor
def _language() -> dict[str, str]:
    locale = get_locale()
    return {"lang": locale.language if locale else "en"}


@bp.after_request
def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.errorhandler(NotFound)
def _not_found(_exc: NotFound) -> tuple[str, int]:
    # Bad, tampered, truncated or unknown tokens all look the same: nothing to learn.
    return render_template("recipient/not_found.html"), 404


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> HTTPException | tuple[str, int]:
    """A friendly page instead of a stack trace; tests and debug mode see the error."""
    if isinstance(exc, HTTPException):
        return exc
    if current_app.testing or current_app.debug:
        raise exc
    # The session is rolled back when the request ends, so nothing half-done is kept.
    log.exception("recipient page %s failed", request.path)
    return render_template("recipient/error.html"), 500
