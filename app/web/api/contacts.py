"""Contacts: upsert, read (with consent and enrollments), and consent changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, g, request
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import clock, database
from app.delivery.transport import SmtpTransport
from app.engine.errors import TransportError
from app.models import Contact, Enrollment, Funnel
from app.services import contacts as contacts_svc
from app.services import optin
from app.settings import EngineSettings
from app.web.api import bp
from app.web.api.errors import ApiError, from_validation
from app.web.api.schemas import ConsentIn, ConsentOut, ContactIn, ContactOut, Email, EnrollmentOut
from app.web.api.wire import json_body, parse, respond

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)
# Statuses the API may not lift: a bounce or a complaint is the recipient's (or their
# server's) word, and only they can take it back.
LOCKED = ("bounced", "complained")


def path_email(raw: str) -> str:
    """The normalised address in the URL, or 422 saying why it is not one."""
    try:
        return _EMAIL.validate_python(raw)
    except ValidationError as exc:
        raise from_validation(exc, "email") from None


def contact_out(session: Session, contact: Contact) -> ContactOut:
    rows = session.execute(
        select(Enrollment, Funnel.key)
        .join(Funnel, Funnel.id == Enrollment.funnel_id)
        .where(Enrollment.contact_id == contact.id)
        .order_by(Enrollment.enrolled_at, Enrollment.id)
    ).all()
    enrollments = [
        EnrollmentOut(
            funnel=key,
            status=e.status,
            stage=e.stage_key,
            stage_entered_at=e.stage_entered_at,  # type: ignore[arg-type]
            enrolled_at=e.enrolled_at,
            exited_at=e.exited_at,
            exit_label=e.exit_label,
        )
        for e, key in rows
    ]
    attributes: dict[str, Any] = {
        **(contact.attributes or {}),
        "timezone": contact.timezone,
        "locale": contact.locale,
    }
    return ContactOut(
        email=contact.email,
        attributes=attributes,
        consent=ConsentOut(**contacts_svc.consent_view(contact)),
        enrollments=enrollments,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


@bp.put("/contacts/<email>")
def put_contact(email: str) -> Response:
    address = path_email(email)
    body = parse(ContactIn, json_body())
    now, session = clock.utcnow(), database.session()
    contact, created = contacts_svc.get_or_create(session, address, now)
    contacts_svc.update_attributes(contact, body.attributes.updates(), now)
    session.commit()
    return respond(contact_out(session, contact), 201 if created else 200)


@bp.get("/contacts/<email>")
def get_contact(email: str) -> Response:
    address = path_email(email)
    session = database.session()
    contact = session.scalar(select(Contact).where(Contact.email == address))
    if contact is None:
        raise ApiError(404, "not_found", f"there is no contact {address}", "email")
    return respond(contact_out(session, contact))


@bp.post("/contacts/<email>/consent")
def post_consent(email: str) -> Response:
    """Change consent; an unknown address becomes a contact (a signup form may be the
    first the engine hears of someone). Every change goes to the ledger as `api`."""
    address = path_email(email)
    body = parse(ConsentIn, json_body())
    now, session = clock.utcnow(), database.session()
    contact, _ = contacts_svc.get_or_create(session, address, now)
    actor = contacts_svc.Actor(
        source="api",
        ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
        actor=g.api_key_name,
    )
    if body.status is not None:
        _set_status(session, contact, body.status, now, actor)
    _set_topics(session, contact, body, now, actor)
    if "frequency" in body.model_fields_set:
        contacts_svc.set_frequency(session, contact, body.frequency, now, actor)
    session.commit()
    return respond(ConsentOut(**contacts_svc.consent_view(contact)))


def _set_status(
    session: Session, contact: Contact, status: str, now: datetime, actor: contacts_svc.Actor
) -> None:
    if contact.status in LOCKED and status == "active":
        raise ApiError(
            409,
            "conflict",
            f"{contact.email} is {contact.status}: the API cannot make it active again",
            "status",
        )
    contacts_svc.set_status(session, contact, status, now, actor)


def _set_topics(
    session: Session, contact: Contact, body: ConsentIn, now: datetime, actor: contacts_svc.Actor
) -> None:
    """Switching a topic on goes through optin.request: double opt-in topics become
    pending and get their confirmation email, the others are subscribed at once."""
    wanted_on = {topic: choice in (True, "subscribed") for topic, choice in body.topics.items()}
    if not wanted_on:
        return
    settings = _engine_settings()
    transport = SmtpTransport(settings.smtp) if settings.smtp else None
    try:
        for topic, on in wanted_on.items():
            if not on:
                contacts_svc.set_topic(session, contact, topic, "unsubscribed", now, actor)
            else:
                optin.request(
                    session,
                    contact,
                    topic,
                    now,
                    actor,
                    settings,
                    transport=transport,  # type: ignore[arg-type]
                    double_opt_in=current_app.config.get("DOUBLE_OPT_IN_TOPICS", []),
                )
    except TransportError as exc:
        session.rollback()
        raise ApiError(
            503,
            "unavailable",
            f"the confirmation email could not be sent, nothing was changed: {exc}",
        ) from None
    finally:
        if transport is not None:
            transport.close()


def _engine_settings() -> EngineSettings:
    # Built once per app: it holds the compiled templates for confirmation emails.
    settings: EngineSettings | None = current_app.extensions.get("nurture.api.settings")
    if settings is None:
        settings = current_app.extensions["nurture.api.settings"] = EngineSettings.from_config(
            current_app.config
        )
    return settings
