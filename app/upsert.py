"""`INSERT ... ON CONFLICT DO NOTHING RETURNING`, on SQLite and PostgreSQL alike.

One round trip where a select, a savepoint, an insert and a release would take four,
and a concurrent twin of the row is simply not inserted (the caller reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

T = TypeVar("T")


def insert_ignore(
    session: Session, model: type[T], values: dict[str, Any], conflict: Sequence[str]
) -> T | None:
    """Insert one row and return it as an ORM object, or None if `conflict` columns
    matched an existing row."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(model)
    )
    return session.scalars(statement, execution_options={"populate_existing": True}).first()


def insert_ignore_id(
    session: Session, model: type[Any], values: dict[str, Any], conflict: Sequence[str]
) -> int | None:
    """Like `insert_ignore`, but returns only the new row's id: several times cheaper
    than building an ORM object from RETURNING, for rows the caller only reads."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    row = session.execute(statement.returning(table.c.id)).first()
    return None if row is None else int(row[0])
