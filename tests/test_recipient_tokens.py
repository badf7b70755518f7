"""Recipient links refuse forged, truncated, tampered and misused tokens with a friendly
404, survive a SECRET_KEY rotation through SECRET_KEY_FALLBACKS, and never show a trace."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app import tokens
from app.models import ConsentChange, Contact
from tests.conftest import at, make_test_app
from tests.helpers import subscribe

NOW = at("2026-03-02 10:00")
ROUTES = {"unsubscribe": "/u/", "preferences": "/p/", "confirm": "/c/"}


def make(
    app: Flask, kind: str, contact_id: int, message_id: int | None = 1, key: str | None = None
) -> str:
    extra = "newsletter" if kind == "confirm" else None
    return tokens.make(kind, key or app.config["SECRET_KEY"], contact_id, message_id, extra=extra)


def ledger_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(ConsentChange)) or 0


def status(sessions: sessionmaker[Session], contact_id: int) -> str:
    with sessions() as s:
        found = s.get(Contact, contact_id)
        assert found is not None
        return found.status


def reencoded(token: str, payload: list[object]) -> str:
    """`token` with its payload swapped for another, keeping the original signature."""
    data = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(
        b"="
    )
    return data.decode() + "." + token.split(".", 1)[1]


def assert_refused(app: Flask, path: str) -> None:
    client = app.test_client(use_cookies=False)
    for response in (client.get(path), client.post(path, data={"List-Unsubscribe": "One-Click"})):
        page = response.get_data(as_text=True)
        assert response.status_code == 404, path
        assert response.mimetype == "text/html"
        assert "This link does not work" in page and "Traceback" not in page


@pytest.mark.parametrize("kind", list(ROUTES))
def test_it_refuses_forged_truncated_and_tampered_tokens(
    app: Flask, sessions: sessionmaker[Session], kind: str
) -> None:
    ada = subscribe(sessions, "ada@example.com", NOW)
    bob = subscribe(sessions, "bob@example.com", NOW)
    good = make(app, kind, ada)
    rows = ledger_rows(sessions)

    bad = [
        make(app, kind, ada, key="a-guessed-secret-key"),  # forged with another key
        good[:-1],
        good[: len(good) // 2],
        good.split(".")[0],  # truncated
        reencoded(
            good, [bob, 1] if kind != "confirm" else [bob, None, "newsletter"]
        ),  # another contact
        reencoded(
            good, [ada, 2] if kind != "confirm" else [ada, None, "nurture"]
        ),  # another message/topic
        "WzEsMV0.bm90LWEtc2lnbmF0dXJl",
        "0",
        "../../etc/passwd",
    ]
    for token in bad:
        assert_refused(app, ROUTES[kind] + token)

    assert ledger_rows(sessions) == rows
    assert status(sessions, ada) == status(sessions, bob) == "active"


@pytest.mark.parametrize(
    ("kind", "route"),
    [("preferences", "/u/"), ("unsubscribe", "/p/"), ("unsubscribe", "/c/"), ("confirm", "/p/")],
)
def test_it_refuses_a_token_made_for_another_kind_of_link(
    app: Flask, sessions: sessionmaker[Session], kind: str, route: str
) -> None:
    ada = subscribe(sessions, "ada@example.com", NOW)

    assert_refused(app, route + make(app, kind, ada))


def test_it_refuses_a_confirm_token_without_a_topic_and_tokens_of_unknown_contacts(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, "ada@example.com", NOW)

    assert_refused(app, "/c/" + tokens.make("confirm", app.config["SECRET_KEY"], ada, None))
    assert_refused(app, "/u/" + make(app, "unsubscribe", ada + 1000))
    assert_refused(app, "/p/" + make(app, "preferences", ada + 1000))


def test_it_acts_only_on_the_contact_the_token_names(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, "ada@example.com", NOW)
    bob = subscribe(sessions, "bob@example.com", NOW)

    app.test_client().post("/u/" + make(app, "unsubscribe", bob))

    assert (status(sessions, ada), status(sessions, bob)) == ("active", "unsubscribed")


@pytest.fixture
def rotated(db_url: str) -> Iterator[Flask]:
    """The app after a key rotation: a new SECRET_KEY, the old one kept as a fallback."""
    app = make_test_app(db_url, SECRET_KEY="the-new-key", SECRET_KEY_FALLBACKS=["the-old-key"])
    yield app
    app.extensions["nurture.engine"].dispose()


def test_it_honours_old_unsubscribe_links_after_a_key_rotation(
    rotated: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, "ada@example.com", NOW)
    old = tokens.make("unsubscribe", "the-old-key", ada, 5)

    response = rotated.test_client(use_cookies=False).post(
        "/u/" + old, data={"List-Unsubscribe": "One-Click"}
    )

    assert response.status_code == 200
    assert status(sessions, ada) == "unsubscribed"


def test_it_refuses_old_links_once_the_old_key_is_dropped(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    ada = subscribe(sessions, "ada@example.com", NOW)
    old = tokens.make("unsubscribe", "the-old-key", ada, 5)

    assert_refused(app, "/u/" + old)
    assert status(sessions, ada) == "active"


def test_it_shows_the_404_page_in_the_browsers_language(app: Flask) -> None:
    response = app.test_client().get(
        "/u/nonsense", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
    )

    assert response.status_code == 404
    assert "Dieser Link funktioniert nicht" in response.get_data(as_text=True)


@pytest.fixture
def production(db_url: str) -> Iterator[Flask]:
    """The app as it runs for real: errors are handled, not propagated."""
    app = make_test_app(db_url, TESTING=False)
    yield app
    app.extensions["nurture.engine"].dispose()


def test_it_shows_a_friendly_page_instead_of_a_stack_trace(
    production: Flask, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("the database caught fire")

    monkeypatch.setattr("app.services.preferences.topic_choices", broken)
    ada = subscribe(sessions, "ada@example.com", NOW)

    response = production.test_client().get("/p/" + make(production, "preferences", ada))

    page = response.get_data(as_text=True)
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "Something went wrong" in page
    assert "Traceback" not in page and "caught fire" not in page


def test_it_lets_errors_through_in_tests(
    app: Flask, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("the database caught fire")

    monkeypatch.setattr("app.services.preferences.topic_choices", broken)
    ada = subscribe(sessions, "ada@example.com", NOW)

    with pytest.raises(RuntimeError, match="caught fire"):
        app.test_client().get("/p/" + make(app, "preferences", ada))


def test_it_writes_the_tokens_itsdangerous_writes():
    # The worker signs without itsdangerous (for speed); the format must stay its own,
    # so links in every email already sent keep working.
    from itsdangerous import URLSafeSerializer

    reference = URLSafeSerializer("the-key", salt="nurture.unsubscribe")
    token = tokens.make("unsubscribe", "the-key", 12, 34)
    assert token == reference.dumps([12, 34])
    long_url = "https://example.com/guide?" + "utm=nurture&" * 20
    link = tokens.make("link", "the-key", 12, 34, long_url)
    assert URLSafeSerializer("the-key", salt="nurture.link").loads(link) == [12, 34, long_url]
    assert tokens.read("link", link, "the-key") == tokens.TokenData(12, 34, long_url)
    assert tokens.read("unsubscribe", link, "the-key") is None  # another kind's salt
