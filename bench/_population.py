"""Bulk-built populations for benchmarks: contacts subscribed to `nurture`, each
enrolled in the example funnel with one message, inserted in chunks (no ORM)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from app.db import make_engine, make_session_factory
from app.migrate import upgrade
from app.models import Contact, Enrollment, Message, Subscription
from app.services.funnels import load_file

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 20_000


def all_due(url: str, n: int, now: datetime) -> None:
    """A migrated database at `url` with the example funnel and n contacts, each with
    its welcome email due at `now`."""
    upgrade(url)
    engine = make_engine(url)
    funnel = publish_example(engine, now - timedelta(days=3))
    enrolled(engine, n, funnel, now, template="ebook-welcome", step=0, due_at=lambda _: now)
    engine.dispose()


def publish_example(engine: Engine, at: datetime) -> tuple[int, int]:
    """Publish funnels/b2b-nurture.yaml; (funnel id, version id)."""
    with make_session_factory(engine).begin() as s:
        _, version, _ = load_file(s, ROOT / "funnels" / "b2b-nurture.yaml", at, None)
        return version.funnel_id, version.id


def enrolled(
    engine: Engine,
    population: int,
    funnel: tuple[int, int],
    now: datetime,
    *,
    due_at: Callable[[int], datetime],
    template: str,
    step: int,
    timeout_at: datetime | None = None,
) -> None:
    """Contacts 1..population in stage read_ebook, each with one scheduled message."""
    funnel_id, version_id = funnel
    with engine.begin() as conn:
        for lo in range(0, population, CHUNK):
            ids = range(lo + 1, min(population, lo + CHUNK) + 1)
            conn.execute(insert(Contact), [
                {"id": i, "email": f"c{i}@bench.example.com",
                 "attributes": {"first_name": f"C{i}"}, "timezone": "Europe/London",
                 "status": "active", "created_at": now, "updated_at": now}
                for i in ids
            ])  # fmt: skip
            conn.execute(insert(Subscription), [
                {"contact_id": i, "topic": "nurture", "status": "subscribed", "updated_at": now}
                for i in ids
            ])  # fmt: skip
            conn.execute(insert(Enrollment), [
                {"id": i, "contact_id": i, "funnel_id": funnel_id, "version_id": version_id,
                 "status": "active", "stage_key": "read_ebook", "visit": 1,
                 "stage_entered_at": now - timedelta(days=1),
                 "enrolled_at": now - timedelta(days=1), "timeout_at": timeout_at}
                for i in ids
            ])  # fmt: skip
            conn.execute(insert(Message), [
                {"enrollment_id": i, "contact_id": i, "funnel_id": funnel_id,
                 "version_id": version_id, "stage_key": "read_ebook", "visit": 1, "step": step,
                 "template": template, "priority": 10, "status": "scheduled", "attempts": 0,
                 "created_at": now, "due_at": due_at(i)}
                for i in ids
            ])  # fmt: skip
