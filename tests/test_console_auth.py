"""Console login, cookies, CSRF, the login rate limit and the admin/editor roles."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from app.models import ApiKey, User
from tests.conftest import make_test_app
from tests.console_support import PASSWORD, csrf_token, logged_in, login, make_user, post


@pytest.fixture
def app(sqlite_url: str):
    flask_app = make_test_app(sqlite_url)
    yield flask_app
    flask_app.extensions["nurture.engine"].dispose()


def test_it_sends_anyone_without_a_session_to_the_login_page(app: Flask) -> None:
    client = app.test_client()
    for path in ("/console/", "/console/contacts", "/console/templates", "/console/admin/users"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/console/login?next=")


def test_it_logs_in_with_the_right_password_and_out_again(app: Flask) -> None:
    make_user(app, "ada@nurture.test")
    client = app.test_client()

    assert login(client, "ada@nurture.test").headers["Location"] == "/console/"
    assert "ada@nurture.test" in client.get("/console/").get_data(as_text=True)

    post(client, "/console/logout")
    assert client.get("/console/").status_code == 302


def test_it_refuses_a_wrong_password_in_plain_words(app: Flask) -> None:
    make_user(app, "ada@nurture.test")
    response = login(app.test_client(), "ada@nurture.test", "not the password")
    assert response.status_code == 200
    assert "That email and password do not match a console user." in response.get_data(as_text=True)


def test_it_stores_only_a_scrypt_hash_of_the_password(app: Flask) -> None:
    make_user(app, "ada@nurture.test")
    with app.extensions["nurture.sessions"]() as session:
        user = session.scalar(select(User))
        assert user is not None
        assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash


def test_it_only_follows_next_inside_the_console(app: Flask) -> None:
    make_user(app, "ada@nurture.test")
    client = app.test_client()
    token = csrf_token(client)
    data = {"email": "ada@nurture.test", "password": PASSWORD, "csrf_token": token}
    response = client.post("/console/login?next=https://evil.example/", data=data)
    assert response.headers["Location"] == "/console/"


def test_it_limits_failed_logins_per_address_with_a_friendly_429(app: Flask) -> None:
    make_user(app, "ada@nurture.test")
    client = app.test_client()
    for _ in range(5):
        assert login(client, "ada@nurture.test", "guess").status_code == 200

    refused = login(client, "ada@nurture.test", PASSWORD)  # even the right one, for now

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in refused.get_data(as_text=True)
    assert login(app.test_client(), "bob@nurture.test", "guess").status_code == 200


def test_it_lets_a_user_in_again_once_the_minute_is_over(app: Flask, monkeypatch) -> None:
    from datetime import timedelta

    from app import clock

    make_user(app, "ada@nurture.test")
    start = clock.utcnow()
    monkeypatch.setattr("app.clock.utcnow", lambda: start)
    client = app.test_client()
    for _ in range(5):
        login(client, "ada@nurture.test", "guess")
    assert login(client, "ada@nurture.test").status_code == 429

    monkeypatch.setattr("app.clock.utcnow", lambda: start + timedelta(seconds=61))
    assert login(client, "ada@nurture.test").status_code == 302


def test_the_session_cookie_is_httponly_and_samesite_lax(app: Flask) -> None:
    make_user(app, "ada@nurture.test")
    cookie = login(app.test_client(), "ada@nurture.test").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_the_session_cookie_is_secure_when_the_public_url_is_https(sqlite_url: str) -> None:
    import config

    settings = config.load({"PUBLIC_URL": "https://nurture.example", "SECRET_KEY": "k"})
    app = make_test_app(sqlite_url, **{k: v for k, v in settings.items() if "COOKIE" in k})
    make_user(app, "ada@nurture.test")
    client = app.test_client()
    page = client.get("/console/login", base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/console/login",
        data={"email": "ada@nurture.test", "password": PASSWORD, "csrf_token": token},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/console/login"},
    )
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]
    app.extensions["nurture.engine"].dispose()


@pytest.mark.parametrize(
    "path",
    [
        "/console/login",
        "/console/logout",
        "/console/funnels/new",
        "/console/admin/keys",
        "/console/contacts/1/consent",
    ],
)
def test_it_refuses_a_post_without_the_csrf_token(app: Flask, path: str) -> None:
    client = logged_in(app)
    response = client.post(path, data={"email": "x@example.com", "name": "k", "source": "x"})
    assert response.status_code == 400
    assert "security token is missing" in response.get_data(as_text=True)


def test_the_validation_endpoint_needs_the_csrf_header(app: Flask) -> None:
    client = logged_in(app)
    assert client.post("/console/validate", json={"source": "key: x"}).status_code == 400
    token = csrf_token(client, "/console/")
    answer = client.post(
        "/console/validate", json={"source": "key: x"}, headers={"X-CSRFToken": token}
    )
    assert answer.status_code == 200 and answer.get_json()["ok"] is False


def test_an_editor_cannot_reach_user_or_key_management(app: Flask) -> None:
    client = logged_in(app, "ed@nurture.test", role="editor")

    for path in ("/console/admin/users", "/console/admin/keys"):
        response = client.get(path)
        assert response.status_code == 403
        assert "Only an admin can open this page" in response.get_data(as_text=True)
    created = post(client, "/console/admin/users", {"email": "eve@x.test", "password": "x" * 12})
    assert created.status_code == 403
    assert post(client, "/console/admin/keys", {"name": "mine"}).status_code == 403
    assert "API keys" not in client.get("/console/").get_data(as_text=True)


def test_an_admin_adds_an_editor_who_can_then_log_in(app: Flask) -> None:
    admin = logged_in(app)
    response = post(
        admin,
        "/console/admin/users",
        {"email": "Ed@Example.com", "role": "editor", "password": "a long password"},
    )
    assert response.status_code == 302

    assert login(app.test_client(), "ed@example.com", "a long password").status_code == 302
    short = post(admin, "/console/admin/users", {"email": "f@example.com", "password": "short"})
    assert short.status_code == 422
    assert "at least 10 characters" in short.get_data(as_text=True)


def test_an_admin_creates_an_api_key_shown_once_and_revokes_it(app: Flask) -> None:
    admin = logged_in(app)
    created = post(admin, "/console/admin/keys", {"name": "website"})
    page = created.get_data(as_text=True)
    assert created.headers["Cache-Control"] == "no-store"
    with app.extensions["nurture.sessions"]() as session:
        key = session.scalar(select(ApiKey))
        assert key is not None and key.name == "website"
        assert key.prefix in page and "Copy it now" in page
    assert "Copy it now" not in admin.get("/console/admin/keys").get_data(as_text=True)

    post(admin, f"/console/admin/keys/{key.id}/revoke")
    with app.extensions["nurture.sessions"]() as session:
        revoked = session.get(ApiKey, key.id)
        assert revoked is not None and revoked.revoked_at is not None
