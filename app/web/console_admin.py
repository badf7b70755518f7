"""Console: users and API keys (admins only)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from app import clock, credentials, database
from app.models import ApiKey, User
from app.services.contacts import InvalidEmail, normalize_email
from app.web.console import admin_required, bp


def _users_page(status: int = 200) -> tuple[str, int]:
    users = database.session().scalars(select(User).order_by(User.email)).all()
    return render_template("console/users.html", users=users), status


@bp.get("/admin/users")
@admin_required
def users() -> tuple[str, int]:
    return _users_page()


@bp.post("/admin/users")
@admin_required
def create_user() -> Response | tuple[str, int]:
    session = database.session()
    role = request.form.get("role", "editor")
    try:
        email = normalize_email(request.form.get("email", ""))
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise ValueError(f"there is a user {email} already")
        credentials.create_user(
            session, email, request.form.get("password", ""), role, clock.utcnow()
        )
    except (InvalidEmail, ValueError) as exc:
        session.rollback()
        flash(f"The user was not created: {exc}.", "error")
        return _users_page(422)
    session.commit()
    flash(
        f"Created {role} {email}. Give them their password in person or over a safe channel.",
        "info",
    )
    return redirect(url_for("console.users"))


def _keys_page(new_key: str | None = None, status: int = 200) -> tuple[str, int]:
    keys = database.session().scalars(select(ApiKey).order_by(ApiKey.created_at.desc())).all()
    return render_template("console/keys.html", keys=keys, new_key=new_key), status


@bp.get("/admin/keys")
@admin_required
def keys() -> tuple[str, int]:
    return _keys_page()


@bp.post("/admin/keys")
@admin_required
def create_key() -> tuple[str, int, dict[str, str]] | tuple[str, int]:
    name = request.form.get("name", "").strip()
    if not name or len(name) > 100:
        flash(
            "Give the key a name of up to 100 characters, e.g. the system that will use it.",
            "error",
        )
        return _keys_page(status=422)
    session = database.session()
    _row, plain = credentials.create_api_key(session, name, clock.utcnow())
    session.commit()
    # Shown in this response only (never flashed: the session cookie is signed, not
    # encrypted), and not kept by any cache.
    page, status = _keys_page(new_key=plain)
    return page, status, {"Cache-Control": "no-store"}


@bp.post("/admin/keys/<int:key_id>/revoke")
@admin_required
def revoke_key(key_id: int) -> Response:
    session = database.session()
    key = session.get(ApiKey, key_id)
    if key is None:
        abort(404)
    if key.revoked_at is None:
        key.revoked_at = clock.utcnow()
        session.commit()
    flash(
        f"Key {key.name} ({key.prefix}…) is revoked: requests with it are refused from now on.",
        "info",
    )
    return redirect(url_for("console.keys"))
