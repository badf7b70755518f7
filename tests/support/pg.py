"""Throwaway PostgreSQL databases for tests.

``make test`` starts a private cluster (scripts/pg.sh) and exports its URL as
``TEST_PG_URL``; tests that need PostgreSQL create their own database on it so that
they never see each other's rows or schema.
"""

from __future__ import annotations

import os
import uuid

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tests.support.ci import in_ci as in_ci  # re-exported: older imports use it from here

ENV_VAR = "TEST_PG_URL"


def pg_url() -> str | None:
    """Return the SQLAlchemy URL of the test server, or None when there is none."""
    return os.environ.get(ENV_VAR) or None


def _libpq(url: URL) -> str:
    """Return a libpq connection string for a SQLAlchemy URL (drops "+psycopg")."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def fresh_database(url: str, prefix: str = "nurture_t", template: str | None = None) -> str:
    """Create a new, uniquely named database on the server of ``url``.

    Empty by default; with ``template`` (a database name, e.g. one migrated once per
    session) a copy of it, which is much faster than migrating again. PostgreSQL
    refuses to copy a database that has open connections, so dispose of engines on
    the template first. Returns the URL of the new database (same credentials, driver
    and query).
    """
    base = make_url(url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # CREATE DATABASE cannot run inside a transaction, hence autocommit. template0
    # because template1 may have been changed by something else on the server.
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} ENCODING 'UTF8'").format(
                sql.Identifier(name), sql.Identifier(template or "template0")
            )
        )
    return base.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database named in ``url``, disconnecting anyone still using it."""
    target = make_url(url)
    # Connect to the maintenance database: one cannot drop the database one is in.
    with psycopg.connect(_libpq(target.set(database="postgres")), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(target.database or "")
            )
        )
