"""Helpers for the console tests: users, a logged-in test client, a funnel with history,
and the app served on loopback for the browser tests."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from app import credentials
from app.delivery.transport import MemoryTransport
from app.settings import EngineSettings
from tests.conftest import at
from tests.helpers import ROOT, event, publish, run, subscribe

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
MONDAY = at("2026-03-02 10:00")
PASSWORD = "correct horse battery"


def make_user(app: Flask, email: str, role: str = "editor", password: str = PASSWORD) -> int:
    with app.extensions["nurture.sessions"].begin() as session:
        return credentials.create_user(session, email, password, role, MONDAY).id


def csrf_token(client: FlaskClient, path: str = "/console/login") -> str:
    """The CSRF token of the session, read from a page's form or meta tag."""
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html
    )
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    token = csrf_token(client)
    return client.post(
        "/console/login", data={"email": email, "password": password, "csrf_token": token}
    )


def logged_in(app: Flask, email: str = "ada@nurture.test", role: str = "admin") -> FlaskClient:
    make_user(app, email, role)
    client = app.test_client()
    response = login(client, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def post(
    client: FlaskClient, path: str, data: dict[str, str] | None = None, **kwargs: object
) -> TestResponse:
    """A form POST with the session's CSRF token, as the console's forms send it."""
    return client.post(
        path, data={"csrf_token": csrf_token(client, "/console/"), **(data or {})}, **kwargs
    )  # type: ignore[arg-type]


def with_history(sessions: sessionmaker[Session], settings: EngineSettings) -> dict[str, datetime]:
    """The six-step funnel live, with contacts spread over its stages:
    ada and bob read the ebook, ada went on to watch video 1, cy converted."""
    publish(sessions, FUNNEL, MONDAY)
    for name in ("ada", "bob", "cy"):
        subscribe(sessions, f"{name}@example.com", MONDAY, first_name=name.title(), company="Acme")
        event(
            sessions, f"{name}@example.com", "ebook_downloaded", MONDAY, ebook="seven-fundamentals"
        )
    later = MONDAY + timedelta(hours=2)
    run(sessions, settings, MONDAY + timedelta(minutes=1), transport=MemoryTransport())
    event(sessions, "ada@example.com", "video_watched", later, video="explainer-1", percent=80)
    event(sessions, "cy@example.com", "form_submitted", later, form="contact-us")
    run(sessions, settings, later + timedelta(hours=2), transport=MemoryTransport())
    return {"monday": MONDAY, "later": later}


@dataclass
class Served:
    app: Flask
    base: str

    @property
    def sessions(self) -> sessionmaker[Session]:
        factory: sessionmaker[Session] = self.app.extensions["nurture.sessions"]
        return factory


@contextmanager
def serve(app: Flask) -> Iterator[Served]:
    """`app` on a real HTTP server at 127.0.0.1 on a free port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(5)
