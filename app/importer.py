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
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from tqdm import tqdm

from app import database
from app.clock import utcnow
from app.models import Contact
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


def import_rows(
    session: Session, rows: list[Row], now: datetime, topic: str | None, actor: contacts_svc.Actor
) -> ImportReport:
    """Upsert one batch of checked rows in the session's transaction; what it did."""
    report = ImportReport()
    latest = {
        address: (line, attrs) for line, address, attrs in rows
    }  # a repeated address: last wins
    query = select(Contact).where(Contact.email.in_(latest))
    if topic:
        query = query.options(selectinload(Contact.subscriptions))
    contacts = {c.email: c for c in session.scalars(query)}
    fresh = [
        Contact(email=a, attributes={}, created_at=now, updated_at=now, subscriptions=[])
        for a in latest
        if a not in contacts
    ]
    session.add_all(fresh)
    session.flush()  # one INSERT for the batch; ledger rows need the ids
    report.created = len(fresh)
    contacts.update((c.email, c) for c in fresh)
    created = {c.email for c in fresh}
    for address, (_line, attrs) in latest.items():
        contact = contacts[address]
        changes = _changes(contact, attrs)
        if changes:
            contacts_svc.update_attributes(contact, changes, now)
        if address not in created:
            report.updated += bool(changes)
            report.unchanged += not changes
        if topic:
            _subscribe(session, contact, topic, now, actor, report)
    return report


def _changes(contact: Contact, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes that differ from what the contact has (so a second run of the
    same file writes nothing)."""
    current = {**(contact.attributes or {}), "timezone": contact.timezone, "locale": contact.locale}
    return {k: v for k, v in attrs.items() if current.get(k) != v}


def _subscribe(
    session: Session,
    contact: Contact,
    topic: str,
    now: datetime,
    actor: contacts_svc.Actor,
    report: ImportReport,
) -> None:
    """Subscribe a contact who has never had a say on `topic`. Someone who turned it
    off (or has not confirmed it yet) is left as they chose: a list is not consent
    over their own decision."""
    state = contact.topic_status(topic)
    if state is None:
        contacts_svc.set_topic(session, contact, topic, "subscribed", now, actor)
        report.subscribed += 1
    elif state != "subscribed":
        report.kept += 1


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
