"""The `flask` command line: db, funnels, contacts, users, apikeys, worker."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from app import credentials, database
from app.clock import parse_iso, utcnow
from app.delivery.render import available
from app.engine.definition import validate_text
from app.models import ApiKey, User
from app.services import funnels as funnels_svc
from app.services.contacts import InvalidEmail, normalize_email


def register(app: Flask) -> None:
    for group in (db_cli, funnels_cli, users_cli, apikeys_cli):
        app.cli.add_command(group)
    app.cli.add_command(worker_command)
    from app.importer import contacts_cli
    from app.segments_cli import segments_cli

    app.cli.add_command(contacts_cli)
    app.cli.add_command(segments_cli)


def _templates() -> set[str]:
    return available(current_app.config["TEMPLATES_DIR"])


@click.group("db", cls=AppGroup, help="Database schema.")
def db_cli() -> None:
    pass


@db_cli.command("upgrade", help="Migrate the database to the newest schema.")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    from app.migrate import upgrade

    url = current_app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url, revision)
    click.echo(f"Database is at {revision}.")


@click.group(
    "funnels", cls=AppGroup, help="Validate, load, export and simulate funnel definitions."
)
def funnels_cli() -> None:
    pass


@funnels_cli.command("validate", help="Check definition files; prints file:line: field: message.")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def funnels_validate(paths: tuple[Path, ...]) -> None:
    templates, failed = _templates(), False
    for path in paths:
        result = validate_text(path.read_text(), templates=templates)
        for problem in result.problems:
            click.echo(problem.format(str(path)))
        failed = failed or not result.ok
        if result.ok:
            click.echo(f"{path}: ok", err=True)
    sys.exit(1 if failed else 0)


@funnels_cli.command("load", help="Validate and publish definition files.")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def funnels_load(paths: tuple[Path, ...]) -> None:
    templates, now, failed = _templates(), utcnow(), False
    for path in paths:
        session = database.sessions()()
        try:
            with session.begin():
                funnel, version, created = funnels_svc.load_file(session, path, now, templates)
            state = "published as" if created else "unchanged at"
            click.echo(f"{path}: {funnel.key} {state} version {version.number}")
        except funnels_svc.DefinitionInvalid as exc:
            for problem in exc.problems:
                click.echo(problem.format(str(path)))
            failed = True
        except funnels_svc.PublishRefused as exc:
            click.echo(f"{path}: not published: {exc}")
            failed = True
        finally:
            session.close()
    sys.exit(1 if failed else 0)


@funnels_cli.command("export", help="Print the live definition of a funnel.")
@click.argument("key")
def funnels_export(key: str) -> None:
    source = funnels_svc.export(database.session(), key)
    if source is None:
        click.echo(f"no funnel with key '{key}'", err=True)
        sys.exit(1)
    click.echo(source, nl=not source.endswith("\n"))


@funnels_cli.command("simulate", help="A deterministic dry run on synthetic contacts.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--contacts", "n_contacts", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--exact",
    is_flag=True,
    help="Run the real engine on an in-memory database, every email rendered (slow: "
    "about a millisecond per email; the default gives the same summary).",
)
def funnels_simulate(path: Path, n_contacts: int, days: int, seed: int, exact: bool) -> None:
    from app.simulate import SimulationError, simulate

    try:
        summary = simulate(
            path.read_text(),
            current_app.config,
            contacts=n_contacts,
            days=days,
            seed=seed,
            exact=exact,
        )
    except SimulationError as exc:
        for line in exc.lines:
            click.echo(line.replace("funnel:", f"{path}:", 1))
        sys.exit(1)
    click.echo(summary.format())


@click.group("users", cls=AppGroup, help="Console users.")
def users_cli() -> None:
    pass


@users_cli.command("create", help="Create a console user (asks for the password).")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "editor"]), default="admin", show_default=True)
@click.password_option()
def users_create(email: str, role: str, password: str) -> None:
    session = database.session()
    try:
        address = normalize_email(email)
        if session.scalar(select(User).where(User.email == address)):
            raise click.ClickException(f"a user {address} already exists")
        credentials.create_user(session, address, password, role, utcnow())
    except (InvalidEmail, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(f"Created {role} {address}.")


@users_cli.command(
    "ensure-admin", help="Create a first admin if there is no user; print how to log in."
)
@click.option("--email", default="admin@example.com", show_default=True)
def users_ensure_admin(email: str) -> None:
    session = database.session()
    if session.scalar(select(User).limit(1)) is not None:
        click.echo(
            "Log in with the console user you created (flask users create EMAIL adds another)."
        )
        return
    password = secrets.token_urlsafe(12)
    credentials.create_user(session, normalize_email(email), password, "admin", utcnow())
    session.commit()
    click.echo(f"Created the first admin. Log in as {email} with password {password}")


@click.group("apikeys", cls=AppGroup, help="API keys for /api/v1/.")
def apikeys_cli() -> None:
    pass


@apikeys_cli.command(
    "create", help="Create an API key; it is printed once and only its hash is kept."
)
@click.argument("name")
def apikeys_create(name: str) -> None:
    session = database.session()
    _, plain = credentials.create_api_key(session, name, utcnow())
    session.commit()
    click.echo(plain)


@apikeys_cli.command("list", help="List API keys (never the keys themselves).")
def apikeys_list() -> None:
    for key in database.session().scalars(select(ApiKey).order_by(ApiKey.id)):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(f"{key.id}\t{key.name}\t{key.prefix}…\t{state}")


@apikeys_cli.command("revoke", help="Revoke an API key by id.")
@click.argument("key_id", type=int)
def apikeys_revoke(key_id: int) -> None:
    session = database.session()
    key = session.get(ApiKey, key_id)
    if key is None:
        raise click.ClickException(f"no API key with id {key_id}")
    key.revoked_at = key.revoked_at or utcnow()
    session.commit()
    click.echo(f"Revoked {key.name}.")


@click.command("worker", help="Run the worker: forever, or one tick with --once.")
@with_appcontext
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@click.option("--now", "now_text", default=None, help="With --once: the tick's time (ISO 8601).")
def worker_command(once: bool, now_text: str | None) -> None:
    from app.runner import SecondWorker, run_forever, run_once

    if now_text and not once:
        raise click.UsageError("--now goes with --once")
    try:
        now = parse_iso(now_text) if now_text else None
    except ValueError:
        raise click.BadParameter(
            f"{now_text!r} is not an ISO 8601 time", param_hint="--now"
        ) from None
    try:
        if once:
            report = run_once(current_app, now or utcnow())
            click.echo(" ".join(f"{k}={v}" for k, v in report.as_dict().items()) or "nothing due")
        else:
            run_forever(current_app)
    except SecondWorker as exc:
        raise click.ClickException(str(exc)) from None
