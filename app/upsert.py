"""`INSERT ... ON CONFLICT DO NOTHING RETURNING`, on SQLite and PostgreSQL alike.

One round trip where a select, a savepoint, an insert and a release would take four,
and a concurrent twin of the row is simply not inserted (the caller reads it). The
`*_many` forms write many rows in one statement, for the batch API.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    TextClause,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

T = TypeVar("T")


def _insert(session: Session) -> Any:
    """The dialect's INSERT construct, the one that knows ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def insert_ignore(
    session: Session, model: type[T], values: dict[str, Any], conflict: Sequence[str]
) -> T | None:
    """Insert one row and return it as an ORM object, or None if `conflict` columns
    matched an existing row."""
    statement = (
        _insert(session)(model)
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
    table = model.__table__
    statement = (
        _insert(session)(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict))
    )
    row = session.execute(statement.returning(table.c.id)).first()
    return None if row is None else int(row[0])


def insert_many(
    session: Session,
    model: type[Any],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    returning: Sequence[str] = (),
) -> list[Row[Any]]:
    """Insert `rows` (all with the same keys) in one statement; with `conflict`, skip
    those whose `conflict` columns match an existing row. The `returning` columns of
    the rows inserted, in the order of `rows` (ids come from the sequence in order).

    On PostgreSQL the rows travel as one array per column (`unnest`): psycopg parses
    a statement's text for its placeholders, which for a thousand rows of multi-row
    VALUES costs more than the insert itself, and `executemany` would send one
    statement per row. SQLite, in process, takes multi-row VALUES.
    """
    if not rows:
        return []
    table = model.__table__
    columns = list(rows[0])
    statement: Any  # PostgreSQL's INSERT or SQLite's: both know ON CONFLICT
    if _postgresql(session):
        source = _unnest(session, table, rows, columns)
        values = select(*(source.c[name] for name in columns)).order_by(source.c.n)
        statement = postgresql.insert(table).from_select(columns, values)
        parameters: list[dict[str, Any]] | None = None
    else:
        statement, parameters = sqlite.insert(table), list(rows)
    if conflict is not None:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
    if not returning:
        session.execute(statement, parameters)
        return []
    ordered = "id" in returning  # ids rise in the order the rows are inserted
    result = list(
        session.execute(statement.returning(*(table.c[name] for name in returning)), parameters)
    )
    return sorted(result, key=lambda row: row.id) if ordered else result


def update_many(
    session: Session,
    model: type[Any],
    rows: Sequence[dict[str, Any]],
    key: str,
    where: ColumnElement[bool] | TextClause | None = None,
) -> None:
    """UPDATE, for each of `rows` (all with the same keys), the rows whose `key`
    column equals its `key` (and that meet `where`) to its other values; in one
    statement on PostgreSQL (`UPDATE ... FROM unnest(...)`), executemany on SQLite."""
    if not rows:
        return
    table = model.__table__
    names = [name for name in rows[0] if name != key]
    if _postgresql(session):
        source = _unnest(session, table, rows, [key, *names])
        statement = update(table).where(table.c[key] == source.c[key])
        statement = statement.values({name: source.c[name] for name in names})
        session.execute(statement if where is None else statement.where(where))
        return
    # executemany sets the columns its parameters name; the key, compared in WHERE,
    # goes by another name.
    statement = update(table).where(table.c[key] == bindparam("b_key"))
    params = [{**row, "b_key": row[key]} for row in rows]
    for row in params:
        del row[key]
    session.execute(statement if where is None else statement.where(where), params)


def one_of(session: Session, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL `column IN (SELECT unnest(array))`: one binary
    array parameter instead of a placeholder per value (which psycopg would parse),
    and a subquery the planner hash-joins or probes an index with; `= ANY(array)`
    would compare each row with every value once the statement is prepared."""
    if not _postgresql(session):
        return column.in_(values)  # type: ignore[no-any-return]
    _send_binary_arrays(session)
    array = BinaryArray(_processed(session, column.type, list(values)))
    parameter = bindparam(None, array, type_=NullType())
    return column.in_(select(func.unnest(cast(parameter, ARRAY(column.type)))))  # type: ignore[no-any-return]


def _processed(session: Session, kind: Any, values: list[Any]) -> list[Any]:
    """The values as the column's type converts them for the driver."""
    dialect = session.get_bind().dialect
    process = kind.dialect_impl(dialect).bind_processor(dialect)
    return values if process is None else [process(value) for value in values]


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _unnest(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], columns: list[str]
) -> Any:
    """`unnest(array, array, ...) WITH ORDINALITY AS v(column, ..., n)`: the rows as a
    table (PostgreSQL), one array parameter per column, each value converted as its
    column's type converts it."""
    _send_binary_arrays(session)
    arrays = []
    for name in columns:
        kind = table.c[name].type
        values = _processed(session, kind, [row[name] for row in rows])
        parameter = bindparam(f"u_{name}", BinaryArray(values), type_=NullType())
        arrays.append(cast(parameter, ARRAY(kind)))
    return func.unnest(*arrays).table_valued(*columns, with_ordinality="n").render_derived()


class BinaryArray(list[Any]):
    """A list that psycopg sends as a binary array: a thousand timestamps or JSON
    documents in text form cost several times more to write out (each element
    quoted and escaped) than the database takes to store them."""


def _send_binary_arrays(session: Session) -> None:
    """Teach the session's psycopg connection to send BinaryArray in binary. (On the
    connection: SQLAlchemy's dialect copies psycopg's global adapters when it starts.)"""
    dbapi_connection = session.connection().connection.dbapi_connection
    adapters = getattr(dbapi_connection, "adapters", None)
    if adapters is not None and _LIST_BINARY is not None:
        adapters.register_dumper(BinaryArray, _LIST_BINARY)


def _list_binary_dumper() -> type | None:
    try:
        from psycopg.types.array import ListBinaryDumper
    except ImportError:  # another driver: BinaryArray is just a list
        return None
    return ListBinaryDumper


_LIST_BINARY = _list_binary_dumper()
