"""A small client for API tests: the app's test client plus an API key.

Each test module makes its own `api` fixture from it (tests/conftest.py is not ours
to extend): `Api.for_app(app)` creates a key the way `flask apikeys create` does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app import credentials
from app.clock import utcnow


def create_key(app: Flask, name: str = "tests", now: datetime | None = None) -> str:
    with app.extensions["nurture.sessions"].begin() as session:
        _, plain = credentials.create_api_key(session, name, now or utcnow())
    return plain


class Api:
    def __init__(self, app: Flask, key: str | None) -> None:
        self.app, self.key = app, key
        self.client = app.test_client()

    @classmethod
    def for_app(cls, app: Flask, name: str = "tests") -> Api:
        return cls(app, create_key(app, name))

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        sent = {"Authorization": f"Bearer {key or self.key}"} if (key or self.key) else {}
        sent.update(headers or {})
        return self.client.open(f"/api/v1{path}", method=method, headers=sent, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("POST", path, **kwargs)


def freeze(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """Make the API's clock read `when` (handlers call app.clock.utcnow once)."""
    monkeypatch.setattr("app.clock.utcnow", lambda: when)


def error_of(response: TestResponse) -> dict[str, Any]:
    """The error object of an error answer, checking the format on the way."""
    body = response.get_json()
    assert response.mimetype == "application/json", response.data
    assert set(body["error"]) == {"code", "message", "field"}, body
    error: dict[str, Any] = body["error"]
    return error
