"""A fresh PostgreSQL database can be created, used and dropped."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.support.pg import drop_database, fresh_database

pytestmark = pytest.mark.pg


def test_it_creates_uses_and_drops_a_fresh_database(pg_server_url: str) -> None:
    url = fresh_database(pg_server_url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            assert conn.execute(text("SELECT current_database()")).scalar_one() in url
    finally:
        engine.dispose()
        drop_database(url)

    probe = create_engine(pg_server_url)
    try:
        with probe.connect() as conn:
            name = url.rsplit("/", 1)[1]
            exists = conn.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar_one()
        assert exists == 0
    finally:
        probe.dispose()


def test_it_gives_each_test_its_own_database(pg_database: str, pg_server_url: str) -> None:
    assert pg_database != pg_server_url
    engine = create_engine(pg_database)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id int)"))
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    finally:
        engine.dispose()


def test_it_copies_a_template_database(pg_database: str, pg_server_url: str) -> None:
    engine = create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE migrated (id int)"))
    engine.dispose()  # a template with open connections cannot be copied

    copy = fresh_database(pg_server_url, template=pg_database.rsplit("/", 1)[1])
    copy_engine = create_engine(copy)
    try:
        with copy_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM migrated")).scalar_one() == 0
    finally:
        copy_engine.dispose()
        drop_database(copy)
