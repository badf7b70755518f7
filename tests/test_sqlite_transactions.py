"""SQLite transactions behave as the engine assumes: a write transaction holds what
it read, and savepoints nest inside it."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from app.db import begin_write, make_engine, make_session_factory
from app.models import Contact
from tests.conftest import at


def test_it_rolls_back_work_done_in_a_savepoint(sqlite_url):
    sessions = make_session_factory(make_engine(sqlite_url))
    with sessions() as s:
        begin_write(s)
        with s.begin_nested():
            s.add(
                Contact(
                    email="ada@example.com",
                    attributes={},
                    created_at=at("2026-03-02 10:00"),
                    updated_at=at("2026-03-02 10:00"),
                )
            )
        s.rollback()
    with sessions() as s:
        assert s.scalar(select(Contact)) is None


def test_it_makes_a_second_writer_wait_for_the_first(sqlite_url):
    """What the worker relies on: between its consent check and its `sending` mark,
    an unsubscribe from the web process cannot slip in."""
    engine = make_engine(sqlite_url)
    sessions = make_session_factory(engine)
    now = at("2026-03-02 10:00")
    with sessions.begin() as s:
        s.add(Contact(email="ada@example.com", attributes={}, created_at=now, updated_at=now))
    order: list[str] = []

    def unsubscribe() -> None:
        with sessions.begin() as s:
            begin_write(s)
            order.append("unsubscribe began")
            s.scalar(select(Contact)).status = "unsubscribed"

    with sessions.begin() as worker:
        begin_write(worker)
        assert worker.scalar(select(Contact)).status == "active"  # the consent check
        other = threading.Thread(target=unsubscribe)
        other.start()
        time.sleep(0.3)
        order.append("worker recorded the send")
    other.join(timeout=10)
    assert order == ["worker recorded the send", "unsubscribe began"]
    engine.dispose()
