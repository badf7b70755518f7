"""`flask contacts import FILE.csv`: streamed, batched, safe to run twice."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from tqdm import tqdm

from app import database
from app.clock import utcnow
from app.models import Contact
from app.services import contacts as contacts_svc

BATCH = 500


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def import_rows(
    session: Session, rows: list[tuple[int, dict[str, str]]], now: datetime, topic: str | None,
    actor: contacts_svc.Actor, report: ImportReport,
) -> None:
    """Upsert one batch of (line number, row) pairs in the session's transaction."""
    valid: dict[str, tuple[int, dict[str, str]]] = {}
    for line, row in rows:
        try:
            valid[contacts_svc.normalize_email(row.get("email") or "")] = (line, row)
        except contacts_svc.InvalidEmail as exc:
            report.bad.append((line, f"email {row.get('email')!r}: {exc}"))
    existing = {
        c.email: c
        for c in session.scalars(
            select(Contact).where(Contact.email.in_(valid)).options(selectinload(Contact.subscriptions))
        )
    }
    for address, (_line, row) in valid.items():
        contact = existing.get(address)
        if contact is None:
            contact = Contact(email=address, attributes={}, created_at=now, updated_at=now)
            session.add(contact)
            session.flush()
            report.created += 1
        else:
            report.updated += 1
        attributes = {k: v for k, v in row.items() if k and k != "email" and v not in (None, "")}
        contacts_svc.update_attributes(contact, attributes, now)
        if topic:
            contacts_svc.set_topic(session, contact, topic, "subscribed", now, actor)


@click.group("contacts", cls=AppGroup, help="Contacts.")
def contacts_cli() -> None:
    pass


@contacts_cli.command("import", help="Import contacts from a CSV file with an `email` column.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default=None, help="Subscribe every imported contact to this topic.")
@click.option("--consent-source", default="import", show_default=True, help="Source written to the consent ledger.")
def contacts_import(path: Path, topic: str | None, consent_source: str) -> None:
    report, now = ImportReport(), utcnow()
    actor = contacts_svc.Actor(source=consent_source, actor=f"import {path.name}")
    size = path.stat().st_size
    with path.open(newline="", encoding="utf-8-sig") as handle, tqdm(
        total=size, unit="B", unit_scale=True, desc="import", file=sys.stderr
    ) as bar:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "email" not in reader.fieldnames:
            raise click.ClickException("the first row must be a header with an `email` column")
        batch: list[tuple[int, dict[str, str]]] = []
        position = 0
        for row in reader:
            batch.append((reader.line_num, row))
            if len(batch) >= BATCH:
                _flush(batch, now, topic, actor, report)
                batch = []
                position = _advance(bar, handle, position)
        _flush(batch, now, topic, actor, report)
        _advance(bar, handle, position)
    click.echo(f"{report.created} created, {report.updated} updated, {len(report.bad)} bad rows")
    for line, why in report.bad:
        click.echo(f"{path}:{line}: {why}")
    sys.exit(1 if report.bad else 0)


def _flush(batch: list[tuple[int, dict[str, str]]], now: datetime, topic: str | None,
           actor: contacts_svc.Actor, report: ImportReport) -> None:
    if not batch:
        return
    session = database.sessions()()
    with session.begin():
        import_rows(session, batch, now, topic, actor, report)
    session.close()


def _advance(bar: tqdm, handle: object, position: int) -> int:  # type: ignore[type-arg]
    try:
        current = handle.buffer.tell()  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return position
    bar.update(current - position)
    return int(current)
