"""`flask segments`: validate, load, export, members, refresh.

Files are validated together, so segments that build on each other can be loaded
in one command, and against the database: the segments and funnels already there,
and the kinds of value contact attributes have held so far.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import database
from app.clock import parse_iso, utcnow
from app.engine.definition import Problem
from app.services import segment_membership
from app.services import segments as segments_svc

FILES = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group("segments", cls=AppGroup, help="Validate, load and inspect segment definitions.")
def segments_cli() -> None:
    pass


def _context(session: Session) -> segments_svc.Context:
    """What the database knows; on a database not migrated yet, nothing (the files are
    still checked against each other)."""
    try:
        return segments_svc.context(session)
    except SQLAlchemyError:
        session.rollback()
        click.echo("(the database is not available: checked the files on their own)", err=True)
        return segments_svc.Context({}, {}, {})


def _check_all(
    session: Session, paths: tuple[Path, ...]
) -> tuple[segments_svc.Context, dict[str, frozenset[str]], dict[Path, list[Problem]]]:
    """Check every file against the database and each other; the context, the files'
    segments (key -> references) and each file's problems."""
    ctx = _context(session)
    texts = {path: path.read_text() for path in paths}
    others = dict(filter(None, (segments_svc.refs_of(text) for text in texts.values())))
    problems: dict[Path, list[Problem]] = {}
    for path, text in texts.items():
        try:
            segments_svc.check(text, ctx, others)
        except segments_svc.SegmentInvalid as exc:
            problems[path] = list(exc.problems)
    return ctx, others, problems


@segments_cli.command("validate", help="Check definition files; prints file:line: field: message.")
@click.argument("paths", nargs=-1, required=True, type=FILES)
def segments_validate(paths: tuple[Path, ...]) -> None:
    _, _, problems = _check_all(database.session(), paths)
    for path in paths:
        for problem in problems.get(path, []):
            click.echo(problem.format(str(path)))
        if path not in problems:
            click.echo(f"{path}: ok", err=True)
    sys.exit(1 if problems else 0)


@segments_cli.command("load", help="Validate and publish definition files (all or none).")
@click.argument("paths", nargs=-1, required=True, type=FILES)
def segments_load(paths: tuple[Path, ...]) -> None:
    session, now = database.session(), utcnow()
    ctx, others, problems = _check_all(session, paths)
    if problems:
        for path in paths:
            for problem in problems.get(path, []):
                click.echo(problem.format(str(path)))
        click.echo("nothing was loaded", err=True)
        sys.exit(1)
    marked = False
    for path in _in_dependency_order(paths, others):
        segment, version, created = segments_svc.load_file(session, path, now, ctx, others)
        marked = marked or created
        state = "published as" if created else "unchanged at"
        click.echo(f"{path}: {segment.key} {state} version {version.number}")
    session.commit()
    if marked:
        click.echo("every contact's memberships will be brought up to date by the worker")


def _in_dependency_order(paths: tuple[Path, ...], others: dict[str, frozenset[str]]) -> list[Path]:
    """Files whose segments others build on first (so each is published before use)."""
    keys = {
        path: (segments_svc.refs_of(path.read_text()) or ("", frozenset()))[0] for path in paths
    }

    def depth(key: str, seen: frozenset[str] = frozenset()) -> int:
        refs = [r for r in others.get(key, ()) if r in others and r not in seen]
        return 1 + max((depth(r, seen | {key}) for r in refs), default=0)

    return sorted(paths, key=lambda p: depth(keys[p]))


@segments_cli.command("export", help="Print the live definition of a segment.")
@click.argument("key")
def segments_export(key: str) -> None:
    source = segments_svc.export(database.session(), key)
    if source is None:
        click.echo(f"no segment with key '{key}'", err=True)
        sys.exit(1)
    click.echo(source, nl=not source.endswith("\n"))


@segments_cli.command("members", help="List a segment's members (email, member since).")
@click.argument("key")
@click.option("--count", "count_only", is_flag=True, help="Print only how many there are.")
@click.option("--limit", default=0, type=click.IntRange(0), help="At most this many (0: all).")
def segments_members(key: str, count_only: bool, limit: int) -> None:
    session = database.session()
    segment = segments_svc.find(session, key)
    if segment is None:
        click.echo(f"no segment with key '{key}'", err=True)
        sys.exit(1)
    if count_only:
        click.echo(segments_svc.size(session, segment))
        return
    after, shown = None, 0
    while page := segments_svc.members(session, segment, after=after, limit=1000):
        for contact_id, email, since in page:
            if limit and shown >= limit:
                return
            click.echo(f"{email}\t{since.isoformat()}")
            after, shown = contact_id, shown + 1


@segments_cli.command("refresh", help="Bring due memberships up to date now (as the worker does).")
@click.option("--all", "everyone", is_flag=True, help="Re-evaluate every contact.")
@click.option("--now", "now_text", default=None, help="As of this time (ISO 8601).")
def segments_refresh(everyone: bool, now_text: str | None) -> None:
    try:
        now = parse_iso(now_text) if now_text else utcnow()
    except ValueError:
        raise click.BadParameter(
            f"{now_text!r} is not an ISO 8601 time", param_hint="--now"
        ) from None
    if everyone:
        session = database.session()
        segments_svc.mark_everyone(session, now)
        session.commit()
    total = done = segment_membership.refresh(database.sessions(), now)
    while done == segment_membership.BUDGET:  # a full budget: there may be more
        done = segment_membership.refresh(database.sessions(), now)
        total += done
    click.echo(f"{total} contact{'s' if total != 1 else ''} brought up to date")
