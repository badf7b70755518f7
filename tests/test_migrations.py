"""One Alembic history upgrades a blank SQLite and a blank PostgreSQL, matches the
models exactly, and downgrades cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db import Base, make_engine
from app.migrate import downgrade, upgrade


def test_it_migrates_to_exactly_the_models(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_it_downgrades_to_nothing_and_up_again(db_url):
    downgrade(db_url, "base")
    engine = make_engine(db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {
        "contacts",
        "events",
        "funnels",
        "funnel_versions",
        "enrollments",
        "messages",
        "consent_ledger",
        "subscriptions",
        "users",
        "api_keys",
    } <= tables


def test_it_indexes_what_the_worker_scans(db_url):
    engine = make_engine(db_url)
    indexes = {
        i["name"] for t in ("messages", "enrollments") for i in inspect(engine).get_indexes(t)
    }
    engine.dispose()
    assert {"ix_messages_due", "ix_enrollments_timeout", "uq_enrollments_active"} <= indexes
