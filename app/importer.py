"""`flask contacts import FILE.csv`: streamed, batched, safe to run twice.

The file is read one record at a time and written BATCH rows per transaction, so
memory stays flat whatever its size and a failure loses at most one batch (run
it again: contacts are matched by address, unchanged rows write nothing, and a
topic subscription is only ever added once). Rows are checked with the same
rules as the API's `PUT /contacts` (app.web.api.schemas.AttributesIn); a bad row
is reported with its line number at the end and the others are imported.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click
from flask import current_app
from flask.cli import AppGroup
from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tqdm import tqdm

from app import database
from app.clock import utcnow
from app.models import ConsentChange, Contact, Subscription
from app.services import contacts as contacts_svc
from app.web.api.errors import UNSTORABLE, from_validation
from app.web.api.schemas import AttributesIn

BATCH = 500
Row = tuple[int, str, dict[str, Any]]  # line, normalised address, attributes


@dataclass(frozen=True)
class BadRow:
    line: int
    why: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    subscribed: int = 0
    # With --topic: contacts who had turned the topic off (or not yet confirmed it),
    # left as they chose.
    kept: int = 0
    bad: list[BadRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.bad)

    def add(self, other: ImportReport) -> None:
        for name in ("created", "updated", "unchanged", "subscribed", "kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bad += other.bad


def check_row(line: int, row: dict[Any, Any]) -> Row | BadRow:
    """The row as (line, address, attributes), or why it cannot be imported."""
    if None in row:  # csv puts cells beyond the header's columns under None
        return BadRow(line, f"{len(row[None])} more cells than the header has columns")
    raw_email = (row.get("email") or "").strip()
    try:
        address = contacts_svc.normalize_email(raw_email)
    except contacts_svc.InvalidEmail as exc:
        return BadRow(line, f"email {raw_email!r}: {exc}" if raw_email else "no email")
    # Empty cells mean "not given", not "delete": a CSV cannot say null.
    attributes = {
        name.strip(): value
        for name, value in row.items()
        if name and name.strip() and name.strip() != "email" and value not in (None, "")
    }
    for name, value in attributes.items():
        if UNSTORABLE.search(name) or UNSTORABLE.search(str(value)):
            return BadRow(line, f"{name}: holds a NUL character, which cannot be stored")
    try:
        checked = AttributesIn.model_validate(attributes)
    except ValidationError as exc:
        return BadRow(line, from_validation(exc).message)
    return line, address, checked.updates()


def read_rows(handle: IO[str]) -> Iterator[Row | BadRow]:
    """Each record of the CSV, checked: a Row, or a BadRow.

    The line is where the record starts (a quoted cell may span lines).
    """
    reader = csv.DictReader(handle)
    if not reader.fieldnames or "email" not in [f.strip() for f in reader.fieldnames]:
        raise click.ClickException("the first row must be a header with an `email` column")
    reader.fieldnames = [f.strip() for f in reader.fieldnames]
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell longer than csv's field size limit
            yield BadRow(start, f"unreadable CSV: {exc}")
        else:
            yield check_row(start, row)
        start = reader.line_num + 1


@dataclass
class _Draft:
    """A contact's stored fields, as plain data: a batch is written with a few bulk
    statements rather than through 1,500 ORM objects (several times faster)."""

    id: int | None
    email: str
    attributes: dict[str, Any]
    timezone: str | None
    locale: str | None
    updated_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        fields = ("email", "attributes", "timezone", "locale", "updated_at")
        return {"id": self.id} | {name: getattr(self, name) for name in fields}


def import_rows(
    session: Session, rows: list[Row], now: datetime, topic: str | None, actor: contacts_svc.Actor
) -> ImportReport:
    """Upsert one batch of checked rows in the session's transaction; what it did."""
    report = ImportReport()
    latest = {address: attrs for _line, address, attrs in rows}  # a repeated address: last wins
    drafts = {
        r.email: _Draft(r.id, r.email, dict(r.attributes or {}), r.timezone, r.locale)
        for r in session.execute(
            select(
                Contact.id, Contact.email, Contact.attributes, Contact.timezone, Contact.locale
            ).where(Contact.email.in_(latest))
        )
    }
    fresh, changed = [], []
    for address, attrs in latest.items():
        draft = drafts.setdefault(address, _Draft(None, address, {}, None, None))
        changes = _changes(draft, attrs)
        if changes:
            # The API's merge rules, applied to the plain fields.
            contacts_svc.update_attributes(draft, changes, now)  # type: ignore[arg-type]
        if draft.id is None:
            fresh.append(draft)
        elif changes:
            changed.append(draft)
        report.unchanged += draft.id is not None and not changes
    _insert(session, fresh, now)
    if changed:
        session.execute(update(Contact), [d.row() for d in changed])
    report.created, report.updated = len(fresh), len(changed)
    if topic:
        _subscribe(session, list(drafts.values()), {d.id for d in fresh}, topic, now, actor, report)
    return report


def _insert(session: Session, fresh: list[_Draft], now: datetime) -> None:
    if not fresh:
        return
    values = [{**d.row(), "created_at": now, "updated_at": now, "status": "active"} for d in fresh]
    for value in values:
        del value["id"]
    statement = insert(Contact).returning(Contact.id, sort_by_parameter_order=True)
    for draft, new_id in zip(fresh, session.scalars(statement, values), strict=True):
        draft.id = new_id


def _changes(draft: _Draft, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes that differ from what the contact has (so a second run of the
    same file writes nothing)."""
    current = {**draft.attributes, "timezone": draft.timezone, "locale": draft.locale}
    return {k: v for k, v in attrs.items() if current.get(k) != v}


def _subscribe(
    session: Session,
    drafts: list[_Draft],
    created: set[int | None],
    topic: str,
    now: datetime,
    actor: contacts_svc.Actor,
    report: ImportReport,
) -> None:
    """Subscribe the contacts who have never had a say on `topic`. Someone who turned
    it off (or has not confirmed it yet) is left as they chose: a list is no consent
    over their own decision. The rows are those contacts.set_topic writes for a
    topic with no state yet (a subscription and a ledger row), in bulk."""
    ids = [d.id for d in drafts]
    states = dict(
        session.execute(  # type: ignore[arg-type]
            select(Subscription.contact_id, Subscription.status).where(
                Subscription.topic == topic, Subscription.contact_id.in_(ids)
            )
        ).all()
    )
    new = [i for i in ids if i not in states]
    report.kept = sum(state != "subscribed" for state in states.values())
    report.subscribed = len(new)
    if not new:
        return
    session.execute(
        insert(Subscription),
        [{"contact_id": i, "topic": topic, "status": "subscribed", "updated_at": now} for i in new],
    )
    ledger = _ledger_row(topic, now, actor)
    session.execute(insert(ConsentChange), [{"contact_id": i, **ledger} for i in new])
    touched = [i for i in new if i not in created]  # the new ones are as of `now` already
    if touched:
        session.execute(update(Contact), [{"id": i, "updated_at": now} for i in touched])


def _ledger_row(topic: str, now: datetime, actor: contacts_svc.Actor) -> dict[str, Any]:
    """The ledger row of a subscription to `topic` from no state, as set_topic writes it."""
    return {
        "at": now,
        "source": actor.source,
        "topic": topic,
        "field": "topic",
        "before": None,
        "after": "subscribed",
        "ip": actor.ip,
        "user_agent": actor.user_agent,
        "actor": actor.actor,
        "message_id": None,
    }


def _write(
    batch: list[Row], now: datetime, topic: str | None, actor: contacts_svc.Actor
) -> ImportReport:
    """Write one batch in its own transaction."""
    try:
        return _write_once(batch, now, topic, actor)
    except IntegrityError:
        # One of its addresses was created meanwhile (by the API, say): once more,
        # and the batch finds that contact instead of inserting it.
        return _write_once(batch, now, topic, actor)


def _write_once(
    batch: list[Row], now: datetime, topic: str | None, actor: contacts_svc.Actor
) -> ImportReport:
    with database.sessions()() as session, session.begin():
        return import_rows(session, batch, now, topic, actor)


@click.group("contacts", cls=AppGroup, help="Contacts.")
def contacts_cli() -> None:
    pass


@contacts_cli.command("import", help="Import contacts from a CSV file with an `email` column.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default=None, help="Subscribe every imported contact to this topic.")
@click.option(
    "--consent-source",
    default="import",
    show_default=True,
    help="Source written to the consent ledger.",
)
def contacts_import(path: Path, topic: str | None, consent_source: str) -> None:
    if topic and topic in current_app.config.get("DOUBLE_OPT_IN_TOPICS", []):
        raise click.ClickException(
            f"topic '{topic}' needs double opt-in, which an import cannot give: "
            "import without --topic and ask the contacts to opt in"
        )
    now, started = utcnow(), time.monotonic()
    actor = contacts_svc.Actor(source=consent_source[:32], actor=f"import {path.name}"[:320])
    try:
        report = _import_file(path, now, topic, actor)
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{path} is not UTF-8 text (byte {exc.start} of a block): save it as CSV UTF-8; "
            "rows before it were imported, and running again is safe"
        ) from None
    elapsed = max(time.monotonic() - started, 1e-9)
    click.echo(
        f"{report.rows} rows in {elapsed:.1f}s ({report.rows / elapsed:,.0f} rows/s): "
        f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.bad)} bad"
    )
    if topic:
        click.echo(f"{report.subscribed} subscribed to {topic}; {report.kept} left as they chose")
    for bad in report.bad:
        click.echo(f"{path}:{bad.line}: {bad.why}")
    sys.exit(1 if report.bad else 0)


def _import_file(
    path: Path, now: datetime, topic: str | None, actor: contacts_svc.Actor
) -> ImportReport:
    report, batch = ImportReport(), list[Row]()
    with path.open(newline="", encoding="utf-8-sig") as handle, _progress(path) as bar:
        for item in read_rows(handle):
            if isinstance(item, BadRow):
                report.bad.append(item)
            else:
                batch.append(item)
            if len(batch) >= BATCH:
                report.add(_write(batch, now, topic, actor))
                batch = []
                _advance(bar, handle, report)
        if batch:
            report.add(_write(batch, now, topic, actor))
        _advance(bar, handle, report)
    return report


def _progress(path: Path) -> tqdm:  # type: ignore[type-arg]
    # By bytes, so the bar knows its end without counting the rows first; the rows
    # and their rate go in the postfix.
    return tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, desc="import", file=sys.stderr
    )


def _advance(bar: tqdm, handle: IO[str], report: ImportReport) -> None:  # type: ignore[type-arg]
    try:
        position = handle.buffer.tell()  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return
    bar.update(position - bar.n)
    rate = report.rows / max(bar.format_dict["elapsed"], 1e-9)
    bar.set_postfix_str(f"{report.rows:,} rows, {rate:,.0f} rows/s", refresh=False)
