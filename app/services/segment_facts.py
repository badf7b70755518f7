"""One contact's facts for segment evaluation, read from the database as of `at`.

Event tallies are aggregated in SQL, one grouped query for every window without
property conditions (counts, sums of a numeric property, oldest and newest, per
event type and window), so a contact with thousands of events costs one small
result, not thousands of rows. Windows with `where` conditions are tallied in
Python over that contact's events of those types only (the engine's `tally`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, case, cast, func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session

from app.engine.segments import Facts, Journey, Needs, Tally, Window, tally
from app.models import Contact, Enrollment, Event, Funnel
from app.services.contacts import render_view


def gather(session: Session, contact: Contact, at: datetime, needs: Needs) -> Facts:
    """The facts `needs` asks for about `contact`, as of `at`."""
    view = render_view(contact)
    plain = [w for w in needs.windows if not w.key.where]
    filtered = [w for w in needs.windows if w.key.where]
    tallies = {**_sql_tallies(session, contact.id, at, plain)}
    tallies.update(_python_tallies(session, contact.id, at, filtered, view))
    return Facts(
        contact=view,
        created_at=contact.created_at,
        status=contact.status,
        topics={s.topic: s.status for s in contact.subscriptions} if needs.topics else {},
        tallies=tallies,
        last_seen=_last_seen(session, contact.id, at) if needs.last_seen else None,
        journeys=_journeys(session, contact.id) if needs.journeys else {},
    )


def _sql_tallies(
    session: Session, contact_id: int, at: datetime, windows: list[Window]
) -> dict[Window, Tally]:
    if not windows:
        return {}
    columns, readers = _columns(session, windows, at)
    rows = session.execute(
        select(Event.type, *columns)
        .where(
            Event.contact_id == contact_id,
            Event.type.in_({w.key.type for w in windows}),
            Event.occurred_at <= at,
        )
        .group_by(Event.type)
    ).all()
    by_type = {row[0]: row[1:] for row in rows}
    return {w: readers[w](by_type[w.key.type]) for w in windows if w.key.type in by_type}


def _columns(
    session: Session, windows: list[Window], at: datetime
) -> tuple[list[ColumnElement[Any]], dict[Window, Any]]:
    """The aggregate columns the windows need (each once) and, per window, how to read
    its Tally from a row of them."""
    columns: list[ColumnElement[Any]] = [func.count(), func.min(Event.occurred_at)]
    columns.append(func.max(Event.occurred_at))
    index: dict[tuple[str, timedelta | None, str | None], int] = {}

    def column(kind: str, within: timedelta | None, prop: str | None = None) -> int:
        if (kind, within, prop) not in index:
            index[(kind, within, prop)] = len(columns)
            columns.append(_aggregate(session, kind, at - within if within else None, prop))
        return index[(kind, within, prop)]

    readers: dict[Window, Any] = {}
    for w in windows:
        count = column("count", w.within) if w.within else 0
        oldest = column("oldest", w.within) if w.within else 1
        total = column("sum", w.within, w.prop) if w.prop else None
        readers[w] = _reader(count, oldest, total, at - w.within if w.within else None)
    return columns, readers


def _reader(count: int, oldest: int, total: int | None, start: datetime | None) -> Any:
    def read(row: Any) -> Tally:
        newest = row[2] if start is None or (row[2] is not None and row[2] > start) else None
        return Tally(row[count] or 0, float(row[total] or 0) if total else 0.0, row[oldest], newest)

    return read


def _aggregate(
    session: Session, kind: str, start: datetime | None, prop: str | None
) -> ColumnElement[Any]:
    inside = Event.occurred_at > start if start is not None else None
    if kind == "count":
        return func.sum(case((inside, 1), else_=0))  # type: ignore[arg-type]
    if kind == "oldest":
        return func.min(case((inside, Event.occurred_at)))  # type: ignore[arg-type]
    assert prop is not None
    is_number, value = _number(session, prop)
    condition = is_number if inside is None else (is_number & inside)
    return func.sum(case((condition, value)))


def _number(session: Session, prop: str) -> tuple[ColumnElement[bool], ColumnElement[Any]]:
    """(is the property a JSON number, its value): a text "12" or a true is not a
    number, as in `where` conditions."""
    parts = prop.split(".")
    if session.get_bind().dialect.name == "postgresql":
        path = array(parts)
        node = Event.properties.op("#>")(path)
        text = Event.properties.op("#>>")(path)
        return func.jsonb_typeof(node) == "number", cast(text, Float)
    json_path = "$" + "".join(f'."{part}"' for part in parts)
    kind = func.json_type(Event.properties, json_path)
    return kind.in_(("integer", "real")), func.json_extract(Event.properties, json_path)


def _python_tallies(
    session: Session, contact_id: int, at: datetime, windows: list[Window], view: dict[str, Any]
) -> dict[Window, Tally]:
    if not windows:
        return {}
    query = select(Event.type, Event.occurred_at, Event.properties).where(
        Event.contact_id == contact_id,
        Event.type.in_({w.key.type for w in windows}),
        Event.occurred_at <= at,
    )
    if all(w.within for w in windows):  # only the longest window's events matter
        longest = max(w.within for w in windows if w.within)
        query = query.where(Event.occurred_at > at - longest)
    events = [(t, occurred, props) for t, occurred, props in session.execute(query).all()]
    return {w: tally(events, w, at, view) for w in windows}


def _last_seen(session: Session, contact_id: int, at: datetime) -> datetime | None:
    query = select(func.max(Event.occurred_at)).where(
        Event.contact_id == contact_id, Event.occurred_at <= at
    )
    return session.scalar(query)


def _journeys(session: Session, contact_id: int) -> dict[str, tuple[Journey, ...]]:
    rows = session.execute(
        select(Funnel.key, Enrollment.status, Enrollment.stage_key, Enrollment.exit_label)
        .join(Funnel, Funnel.id == Enrollment.funnel_id)
        .where(Enrollment.contact_id == contact_id)
    ).all()
    found: dict[str, list[Journey]] = defaultdict(list)
    for key, status, stage, label in rows:
        found[key].append(Journey(status, stage, label))
    return {key: tuple(journeys) for key, journeys in found.items()}
