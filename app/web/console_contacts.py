"""Console: contact search, a contact's timeline, and manual consent changes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from werkzeug.wrappers import Response

from app import clock, database
from app.models import Contact, Enrollment, Funnel
from app.services import contacts as contacts_svc
from app.services.funnels import live_funnels
from app.web.console import bp, console_actor
from app.web.console_timeline import timeline

PER_PAGE = 50
ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
COLUMNS: dict[str, Any] = {
    "status": Contact.status,
    "timezone": Contact.timezone,
    "locale": Contact.locale,
}


class SearchError(ValueError):
    """The query cannot be understood; the message says how to write it."""


@dataclass(frozen=True)
class Page:
    contacts: list[Contact]
    total: int
    number: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))


def condition(query: str) -> ColumnElement[bool] | None:
    """`attr=value` matches an attribute (or status, timezone, locale); anything else is
    part of an email address."""
    query = query.strip()
    if not query:
        return None
    if "=" not in query:
        return Contact.email.contains(query.lower(), autoescape=True)
    name, value = (part.strip() for part in query.split("=", 1))
    if name == "email":
        return Contact.email.contains(value.lower(), autoescape=True)
    if name in COLUMNS:
        return COLUMNS[name] == value  # type: ignore[no-any-return]
    if not ATTRIBUTE.match(name):
        raise SearchError(
            "An attribute search looks like company=Acme: a name of letters, digits, _, - or . "
            "then = and the value."
        )
    # The same expression is json_extract on SQLite and ->> on PostgreSQL; the cast makes
    # numbers compare as the text that was typed.
    return cast(Contact.attributes[name].as_string(), String) == value


def search(session: Session, query: str, number: int) -> Page:
    where = condition(query)
    select_contacts = select(Contact).order_by(Contact.email)
    count = select(func.count()).select_from(Contact)
    if where is not None:
        select_contacts, count = select_contacts.where(where), count.where(where)
    total = session.scalar(count) or 0
    number = max(1, min(number, -(-total // PER_PAGE) or 1))
    rows = session.scalars(select_contacts.limit(PER_PAGE).offset((number - 1) * PER_PAGE))
    return Page(list(rows), total, number)


def known_topics(session: Session, contact: Contact) -> list[str]:
    """Topics worth offering: the contact's, every live funnel's, double opt-in ones."""
    topics = {s.topic for s in contact.subscriptions}
    topics |= {f.definition.topic for f in live_funnels(session)}
    topics |= set(current_app.config.get("DOUBLE_OPT_IN_TOPICS", []))
    return sorted(topics)


def _contact_or_404(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        abort(404)
    return contact


@bp.get("/contacts")
def contacts() -> tuple[str, int]:
    query = request.args.get("q", "")
    number = request.args.get("page", 1, type=int) or 1
    try:
        page = search(database.session(), query, number)
    except SearchError as exc:
        return render_template("console/contacts.html", q=query, page=None, error=str(exc)), 400
    return render_template("console/contacts.html", q=query, page=page, error=None), 200


@bp.get("/contacts/<int:contact_id>")
def contact(contact_id: int) -> str:
    session = database.session()
    found = _contact_or_404(session, contact_id)
    enrollments = session.execute(
        select(Enrollment, Funnel.key, Funnel.name)
        .join(Funnel, Funnel.id == Enrollment.funnel_id)
        .where(Enrollment.contact_id == found.id)
        .order_by(Enrollment.enrolled_at.desc())
    ).all()
    return render_template(
        "console/contact.html",
        contact=found,
        view=contacts_svc.render_view(found),
        enrollments=enrollments,
        entries=timeline(session, found),
        topics=known_topics(session, found),
        statuses=contacts_svc.STATUSES,
        topic_states=contacts_svc.TOPIC_STATES,
    )


def _apply_consent(session: Session, found: Contact) -> int:
    """Applies the form's status and topic choices; returns how many changed."""
    now, actor, changed = clock.utcnow(), console_actor(), 0
    status = request.form.get("status", found.status)
    if status in contacts_svc.STATUSES:
        changed += contacts_svc.set_status(session, found, status, now, actor)
    for topic in known_topics(session, found):
        state = request.form.get(f"topic-{topic}", "")
        if state in contacts_svc.TOPIC_STATES:
            changed += contacts_svc.set_topic(session, found, topic, state, now, actor)
    new_topic = request.form.get("new_topic", "").strip().lower()
    new_state = request.form.get("new_topic_state", "subscribed")
    if new_topic and new_state in contacts_svc.TOPIC_STATES:
        if not ATTRIBUTE.match(new_topic):
            raise ValueError("A topic name uses letters, digits, _, - or . (e.g. newsletter).")
        changed += contacts_svc.set_topic(session, found, new_topic, new_state, now, actor)
    return changed


@bp.post("/contacts/<int:contact_id>/consent")
def change_consent(contact_id: int) -> Response:
    session = database.session()
    found = _contact_or_404(session, contact_id)
    try:
        changed = _apply_consent(session, found)
    except ValueError as exc:
        session.rollback()
        flash(f"Nothing was saved: {exc}", "error")
        return redirect(url_for("console.contact", contact_id=contact_id))
    session.commit()
    if changed:
        noun = "change" if changed == 1 else "changes"
        flash(f"Saved: {changed} {noun} written to the consent ledger as made by you.", "info")
    else:
        flash("Nothing changed: the choices were the same as before.", "info")
    return redirect(url_for("console.contact", contact_id=contact_id) + "#consent")
