"""Translations of the recipient pages (Flask-Babel, catalogs in app/translations).

The locale of a page about a contact is the contact's own (a view stores it on
`flask.g` before rendering); otherwise the browser's Accept-Language picks among
the languages we have catalogs for; otherwise English.
"""

from __future__ import annotations

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, refresh  # type: ignore[import-untyped]

# The languages with a catalog in app/translations (English is the source language).
LOCALES = ("en", "de", "fr", "es")
DEFAULT = "en"


def normalize(locale: str | None) -> str | None:
    """The supported language of a locale tag ("de-AT", "fr_CA" -> "de", "fr"), or None."""
    if not locale:
        return None
    language = locale.replace("_", "-").split("-", 1)[0].strip().lower()
    return language if language in LOCALES else None


def select_locale() -> str:
    """Flask-Babel's locale selector: the contact's language, the browser's, or English."""
    chosen: str | None = g.get("recipient_locale")
    if chosen:
        return chosen
    if has_request_context():
        return request.accept_languages.best_match(LOCALES) or DEFAULT
    return DEFAULT


def use_contact_locale(locale: str | None) -> None:
    """Render the rest of this request in the contact's language, when we have it.

    Flask-Babel caches the locale on first use, so the cache is refreshed here in
    case something (a 404 handler, a context processor) already asked for it.
    """
    language = normalize(locale)
    if language is not None:
        g.recipient_locale = language
        refresh()


def init_babel(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
