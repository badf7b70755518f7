"""Fixtures for tests of the app: a migrated database per test, the app, personas.

Migrations run once per session into a template (a SQLite file, a PostgreSQL
template database); each test gets a fresh copy, so tests never see each other.
Tests that take `db_url` run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app import create_app
from app.migrate import upgrade
from app.settings import EngineSettings
from tests.support.ci import skip_or_fail
from tests.support.pg import drop_database, pg_url

pytest_plugins = ["tests.support.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates" / "email"


def at(text: str) -> datetime:
    """A fixed aware UTC time: at("2026-03-02 09:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "nurture.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    url = pg_url()
    if url is None:
        yield ""
        return
    name = f"nurture_tmpl_{uuid.uuid4().hex[:8]}"
    base = make_url(url)
    with psycopg.connect(
        base.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    ) as c:
        c.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )
    template_url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(template_url)
    yield template_url
    drop_database(template_url)


def _clone_pg(template_url: str) -> str:
    template = make_url(template_url)
    name = f"nurture_t_{uuid.uuid4().hex[:12]}"
    libpq = template.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(libpq, autocommit=True) as c:
        c.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template.database or "")
            )
        )
    return template.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A freshly migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "nurture.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    if not template:
        skip_or_fail("TEST_PG_URL is not set: no PostgreSQL server (run `make test`)")
    url = _clone_pg(template)
    yield url
    drop_database(url)


@pytest.fixture
def pg_only_url(pg_template: str) -> Iterator[str]:
    """A freshly migrated PostgreSQL database, for what SQLite cannot do (many workers)."""
    if not pg_template:
        skip_or_fail("TEST_PG_URL is not set: no PostgreSQL server (run `make test`)")
    url = _clone_pg(pg_template)
    yield url
    drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A freshly migrated SQLite database, for tests that are about SQLite itself."""
    path = tmp_path / "nurture.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def make_test_app(db: str, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": db,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "PUBLIC_URL": "http://nurture.test",
        "MAIL_FROM": "Nurture <hello@nurture.test>",
        "TEMPLATES_DIR": str(TEMPLATES),
        "GLOBAL_CAPS": "",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": 2525,
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    flask_app = make_test_app(db_url)
    yield flask_app
    flask_app.extensions["nurture.engine"].dispose()


@pytest.fixture
def sessions(app: Flask) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = app.extensions["nurture.sessions"]
    return factory


@pytest.fixture
def settings(app: Flask) -> EngineSettings:
    return EngineSettings.from_config(app.config)
