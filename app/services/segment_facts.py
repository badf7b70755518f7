"""One contact's facts for segment evaluation, read from the database as of `at`.

Event tallies are aggregated in SQL, one grouped query for every window without
property conditions (counts, sums of a numeric property, oldest and newest, per
event type and window), so a contact with thousands of events costs one small
result, not thousands of rows. Windows with `where` conditions are tallied in
Python over that contact's events of those types only (the engine's `tally`).

The statements depend only on what the live segments need, so they are built once
per set of needs (with the contact and the moments as parameters) and reused:
building them is most of the cost of a small query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, bindparam, case, cast, func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session

from app.db import UTCDateTime
from app.engine.segments import Facts, Journey, Needs, Tally, Window, tally
from app.models import Contact, Enrollment, Event, Funnel
from app.services.contacts import render_view

Reader = Callable[[Sequence[Any]], Tally]


def gather(session: Session, contact: Contact, at: datetime, needs: Needs) -> Facts:
    """The facts `needs` asks for about `contact`, as of `at`."""
    view = render_view(contact)
    queries = _queries(needs, session.get_bind().dialect.name)
    tallies = queries.sql_tallies(session, contact.id, at)
    tallies.update(queries.python_tallies(session, contact.id, at, view))
    return Facts(
        contact=view,
        created_at=contact.created_at,
        status=contact.status,
        topics={s.topic: s.status for s in contact.subscriptions} if needs.topics else {},
        tallies=tallies,
        last_seen=_last_seen(session, contact.id, at) if needs.last_seen else None,
        journeys=_journeys(session, contact.id) if needs.journeys else {},
    )


@cache
def _queries(needs: Needs, dialect: str) -> _Queries:
    return _Queries(needs, dialect)


class _Queries:
    """The prepared statements for one set of needs on one kind of database."""

    def __init__(self, needs: Needs, dialect: str) -> None:
        self.dialect = dialect
        self.plain = sorted((w for w in needs.windows if not w.key.where), key=repr)
        self.filtered = sorted((w for w in needs.windows if w.key.where), key=repr)
        self.starts = sorted({w.within for w in needs.windows if w.within}, key=lambda d: d)
        self.aggregate, self.readers = self._aggregate() if self.plain else (None, {})
        self.rows = self._rows() if self.filtered else None

    def params(self, contact_id: int, at: datetime) -> dict[str, Any]:
        found: dict[str, Any] = {"contact_id": contact_id, "at": at}
        found.update({f"start_{i}": at - within for i, within in enumerate(self.starts)})
        return found

    def start(self, within: timedelta) -> Any:
        return bindparam(f"start_{self.starts.index(within)}", type_=UTCDateTime())

    def _aggregate(self) -> tuple[Select[Any], dict[Window, Reader]]:
        columns: list[ColumnElement[Any]] = [func.count(), func.min(Event.occurred_at)]
        columns.append(func.max(Event.occurred_at))
        index: dict[tuple[str, timedelta | None, str | None], int] = {}

        def column(kind: str, within: timedelta | None, prop: str | None = None) -> int:
            if (kind, within, prop) not in index:
                index[(kind, within, prop)] = len(columns)
                columns.append(self._column(kind, within, prop))
            return index[(kind, within, prop)]

        readers: dict[Window, Reader] = {}
        for w in self.plain:
            count = column("count", w.within) if w.within else 0
            oldest = column("oldest", w.within) if w.within else 1
            total = column("sum", w.within, w.prop) if w.prop else None
            readers[w] = _reader(count, oldest, total, w.within)
        types = sorted({w.key.type for w in self.plain})
        statement = select(Event.type, *columns).where(*_scope(types)).group_by(Event.type)
        return statement, readers

    def _column(self, kind: str, within: timedelta | None, prop: str | None) -> ColumnElement[Any]:
        inside = Event.occurred_at > self.start(within) if within else None
        if kind == "count":
            return func.sum(case((inside, 1), else_=0))  # type: ignore[arg-type]
        if kind == "oldest":
            return func.min(case((inside, Event.occurred_at)))  # type: ignore[arg-type]
        assert prop is not None
        is_number, value = _number(self.dialect, prop)
        return func.sum(case((is_number if inside is None else is_number & inside, value)))

    def _rows(self) -> Select[Any]:
        types = sorted({w.key.type for w in self.filtered})
        query = select(Event.type, Event.occurred_at, Event.properties).where(*_scope(types))
        if all(w.within for w in self.filtered):  # only the longest window's events matter
            longest = max(w.within for w in self.filtered if w.within)
            query = query.where(Event.occurred_at > self.start(longest))
        return query

    def sql_tallies(self, session: Session, contact_id: int, at: datetime) -> dict[Window, Tally]:
        if self.aggregate is None:
            return {}
        rows = session.execute(self.aggregate, self.params(contact_id, at)).all()
        by_type = {row[0]: row[1:] for row in rows}
        return {
            w: read(by_type[w.key.type])
            for w, read in self.readers.items()
            if w.key.type in by_type
        }

    def python_tallies(
        self, session: Session, contact_id: int, at: datetime, view: dict[str, Any]
    ) -> dict[Window, Tally]:
        if self.rows is None:
            return {}
        found = session.execute(self.rows, self.params(contact_id, at)).all()
        events = [(t, occurred, properties) for t, occurred, properties in found]
        return {w: tally(events, w, at, view) for w in self.filtered}


def _scope(types: list[str]) -> list[ColumnElement[bool]]:
    return [
        Event.contact_id == bindparam("contact_id"),
        Event.type.in_(types),
        Event.occurred_at <= bindparam("at", type_=UTCDateTime()),
    ]


def _reader(count: int, oldest: int, total: int | None, within: timedelta | None) -> Reader:
    def read(row: Sequence[Any]) -> Tally:
        newest = row[2]
        if within is not None and row[count] == 0:
            newest = None  # nothing in the window (the newest event is older)
        amount = float(row[total] or 0) if total is not None else 0.0
        return Tally(row[count] or 0, amount, row[oldest], newest)

    return read


def _number(dialect: str, prop: str) -> tuple[ColumnElement[bool], ColumnElement[Any]]:
    """(is the property a JSON number, its value): a text "12" or a true is not a
    number, as in `where` conditions."""
    parts = prop.split(".")
    if dialect == "postgresql":
        path = array(parts)
        node = Event.properties.op("#>")(path)
        text = Event.properties.op("#>>")(path)
        return func.jsonb_typeof(node) == "number", cast(text, Float)
    json_path = "$" + "".join(f'."{part}"' for part in parts)
    kind = func.json_type(Event.properties, json_path)
    return kind.in_(("integer", "real")), func.json_extract(Event.properties, json_path)


_LAST_SEEN = select(func.max(Event.occurred_at)).where(
    Event.contact_id == bindparam("contact_id"),
    Event.occurred_at <= bindparam("at", type_=UTCDateTime()),
)
_JOURNEYS = (
    select(Funnel.key, Enrollment.status, Enrollment.stage_key, Enrollment.exit_label)
    .join(Funnel, Funnel.id == Enrollment.funnel_id)
    .where(Enrollment.contact_id == bindparam("contact_id"))
)


def _last_seen(session: Session, contact_id: int, at: datetime) -> datetime | None:
    found: datetime | None = session.scalar(_LAST_SEEN, {"contact_id": contact_id, "at": at})
    return found


def _journeys(session: Session, contact_id: int) -> dict[str, tuple[Journey, ...]]:
    found: dict[str, list[Journey]] = defaultdict(list)
    for key, status, stage, label in session.execute(_JOURNEYS, {"contact_id": contact_id}):
        found[key].append(Journey(status, stage, label))
    return {key: tuple(journeys) for key, journeys in found.items()}
