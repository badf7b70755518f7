"""Console: the funnel editor (validation as you type, drafts, versions, simulation)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app import clock, database
from app.delivery.render import available
from app.engine.definition import FILE_FIELD, Problem, validate_text
from app.models import Funnel
from app.services import funnels as funnels_svc
from app.simulate import SimulationError, simulate
from app.web.console import bp, templates_dir
from app.web.console_funnels import funnel_or_404

# The simulator runs in the request and costs about 0.3 ms per contact over 90 days
# on a small machine: a default that answers at once, limits that answer in seconds.
SIM_CONTACTS, SIM_DAYS = 1000, 30
MAX_SIM_CONTACTS, MAX_SIM_DAYS = 20_000, 90

STARTER = """\
key: {key}
name: {name}
topic: nurture
entry: {{on: signed_up}}
exit: {{on: purchased, as: converted}}
caps: [{{max: 1, per: 1d}}]
stages:
  - key: welcome
    emails:
      - {{template: {template}, after: 0m}}
    transitions:
      - {{on: email_clicked, to: engaged}}
      - {{after: 7d, to: engaged}}
  - key: engaged
    emails:
      - {{template: {template}, after: 1d}}
"""


def problem_dicts(problems: tuple[Problem, ...] | list[Problem]) -> list[dict[str, Any]]:
    """Problems as the page and the JSON endpoint show them (no field for whole-file ones)."""
    return [{**asdict(p), "field": None if p.field == FILE_FIELD else p.field} for p in problems]


def check(source: str) -> list[dict[str, Any]]:
    """The same validation as `flask funnels validate`, against the templates that exist."""
    return problem_dicts(validate_text(source, templates=available(templates_dir())).problems)


def starter_source() -> str:
    names = sorted(available(templates_dir()))
    return STARTER.format(
        key="new-funnel", name="New funnel", template=names[0] if names else "welcome"
    )


def _int_field(name: str, default: int, maximum: int) -> int:
    raw = request.form.get(name, "")
    return max(1, min(maximum, int(raw))) if raw.strip().isdigit() else default


@bp.post("/validate")
def validate() -> Response | tuple[Response, int]:
    """Problems of the posted text (JSON `{"source": ...}`), for validation as you type."""
    payload = request.get_json(silent=True) or {}
    source = payload.get("source") if isinstance(payload, dict) else None
    if not isinstance(source, str):
        return jsonify(error='send the definition as {"source": "..."}'), 400
    problems = check(source)
    return jsonify(ok=not problems, problems=problems)


def _render(funnel: Funnel | None, source: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    extra.setdefault("problems", None)
    return render_template(
        "console/editor.html",
        funnel=funnel,
        source=source,
        sim_contacts=extra.pop("sim_contacts", SIM_CONTACTS),
        sim_days=extra.pop("sim_days", SIM_DAYS),
        max_contacts=MAX_SIM_CONTACTS,
        max_days=MAX_SIM_DAYS,
        **extra,
    ), status


def _simulate(funnel: Funnel | None, source: str) -> tuple[str, int]:
    contacts = _int_field("contacts", SIM_CONTACTS, MAX_SIM_CONTACTS)
    days = _int_field("days", SIM_DAYS, MAX_SIM_DAYS)
    try:
        summary = simulate(source, current_app.config, contacts=contacts, days=days, seed=1)
    except SimulationError as exc:
        # A valid definition the simulator cannot run (a funnel entered on a segment:
        # synthetic contacts only send events) says why rather than "fix the problems".
        problems = check(source)
        return _render(
            funnel,
            source,
            422,
            problems=problems,
            sim_contacts=contacts,
            sim_days=days,
            sim_error=[] if problems else exc.lines,
        )
    return _render(
        funnel, source, simulation=summary.format(), sim_contacts=contacts, sim_days=days
    )


def _save_version(funnel: Funnel | None, source: str) -> Response | tuple[str, int]:
    session = database.session()
    result = validate_text(source, templates=available(templates_dir()))
    if result.funnel is None:
        return _render(funnel, source, 422, problems=problem_dicts(result.problems))
    key = result.funnel.key
    if funnel is not None and key != funnel.key:
        message = (
            f"The definition says key: {key}, but this is the funnel {funnel.key}. "
            "Keep the key, or make a new funnel for a different one."
        )
        return _render(funnel, source, 422, problems=[], refusal=message)
    if funnel is None and session.scalar(select(Funnel.id).where(Funnel.key == key)) is not None:
        message = f"A funnel with key {key} exists already: edit it, or choose another key."
        return _render(funnel, source, 422, problems=[], refusal=message)
    now = clock.utcnow()
    saved, version, created = funnels_svc.save_version(
        session, source, now, templates=available(templates_dir()), created_by=current_user.email
    )
    saved.draft_source = None
    session.commit()
    if created:
        flash(f"Saved as version {version.number}. It is not live until you publish it.", "info")
    else:
        flash(
            f"Nothing changed since version {version.number}, so no new version was made.", "info"
        )
    return redirect(url_for("console.version", key=saved.key, number=version.number))


@bp.route("/funnels/new", methods=["GET", "POST"])
def new_funnel() -> Response | tuple[str, int]:
    if request.method == "GET":
        return _render(None, starter_source())
    source, action = request.form.get("source", ""), request.form.get("action", "check")
    if action == "save":
        return _save_version(None, source)
    if action == "simulate":
        return _simulate(None, source)
    return _render(None, source, problems=check(source))


@bp.route("/funnels/<key>/edit", methods=["GET", "POST"])
def edit_funnel(key: str) -> Response | tuple[str, int]:
    session = database.session()
    funnel = funnel_or_404(session, key)
    if request.method == "GET":
        latest = funnels_svc.latest_version(session, funnel)
        source = funnel.draft_source or (latest.source if latest else starter_source())
        return _render(funnel, source, has_draft=funnel.draft_source is not None)
    source, action = request.form.get("source", ""), request.form.get("action", "check")
    if action == "save":
        return _save_version(funnel, source)
    if action == "simulate":
        return _simulate(funnel, source)
    if action == "draft":
        funnel.draft_source = source
        funnel.updated_at = clock.utcnow()
        session.commit()
        flash("Draft saved. It is only kept for editing: save a version to publish it.", "info")
        return redirect(url_for("console.edit_funnel", key=key))
    if action == "discard":
        funnel.draft_source = None
        session.commit()
        flash("Draft discarded: the editor shows the newest version again.", "info")
        return redirect(url_for("console.edit_funnel", key=key))
    return _render(
        funnel, source, problems=check(source), has_draft=funnel.draft_source is not None
    )
