"""Console: email templates (list, edit, preview against a sample or real contact, test send)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import replace
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from app import clock, database
from app.delivery.compose import compose, sender_domain
from app.delivery.render import Rendered, TemplateProblem, Templates, available, sample_context
from app.delivery.transport import SmtpTransport
from app.engine.errors import TransportError
from app.models import Contact
from app.services import contacts as contacts_svc
from app.services.funnels import live_funnels
from app.settings import EngineSettings
from app.web.console import bp, templates_dir

# Layouts start with "_"; nothing that could climb out of the directory.
NAME = re.compile(r"^_?[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
PREVIEW_UNSUBSCRIBE = "https://example.invalid/unsubscribe-preview"
PREVIEW_PREFERENCES = "https://example.invalid/preferences-preview"
PREVIEW_CONFIRM = "https://example.invalid/confirm-preview"
STARTER = """\
---
subject: Hello{% if contact.first_name %}, {{ contact.first_name }}{% endif %}
preheader: The line inboxes show next to the subject.
---
{% extends "_layout.html" %}
{% block body %}
<p>Hi {{ contact.first_name or "there" }},</p>
<p>Write your email here.</p>
{% endblock %}
"""


def _directory() -> Path:
    return Path(templates_dir())


def _checked_name(name: str) -> str:
    if not NAME.match(name) or not (_directory() / f"{name}.html").exists():
        abort(404)
    return name


def _uses() -> dict[str, list[tuple[str, str]]]:
    """Template name -> (funnel key, stage key) of every live funnel email that uses it."""
    uses: dict[str, list[tuple[str, str]]] = {}
    for live in live_funnels(database.session()):
        for stage in live.definition.stages:
            for email in stage.emails:
                uses.setdefault(email.template, []).append((live.definition.key, stage.key))
    return uses


def _subject_line(path: Path) -> str:
    for line in path.read_text().splitlines()[1:6]:
        if line.startswith("subject:"):
            return line.removeprefix("subject:").strip()
    return ""


def check_edit(name: str, html: str, text: str | None) -> str | None:
    """Renders the edited template (or, for a layout, every email) against the sample
    contact in a scratch copy of the directory; the problem, or None if all render.

    `text` is the new plain-text part: "" removes it, None leaves it as it is.
    """
    with tempfile.TemporaryDirectory() as scratch:
        for path in _directory().glob("*"):
            if path.suffix in (".html", ".txt") and path.is_file():
                shutil.copy(path, scratch)
        Path(scratch, f"{name}.html").write_text(html)
        _set_text(Path(scratch, f"{name}.txt"), text)
        templates = Templates(scratch)
        names = sorted(available(scratch)) if name.startswith("_") else [name]
        for each in names:
            try:
                templates.render(each, sample())
            except TemplateProblem as exc:
                return str(exc)
    return None


def _write(path: Path, content: str) -> None:
    """Replace a file in one step, so the worker never reads half a template."""
    scratch = path.with_name(f".{path.name}.saving")
    scratch.write_text(content)
    os.replace(scratch, path)


def _set_text(path: Path, text: str | None) -> None:
    """Write, remove ("" or only whitespace) or keep (None) a plain-text part."""
    if text is None:
        return
    if text.strip():
        _write(path, text)
    elif path.exists():
        path.unlink()


@bp.get("/templates")
def templates() -> str:
    directory = _directory()
    names = sorted(available(directory))
    layouts = sorted(p.stem for p in directory.glob("_*.html"))
    rows = [
        (n, _subject_line(directory / f"{n}.html"), (directory / f"{n}.txt").exists())
        for n in names
    ]
    return render_template("console/templates.html", rows=rows, layouts=layouts, uses=_uses())


@bp.post("/templates/new")
def new_template() -> Response:
    name = request.form.get("name", "").strip().lower()
    path = _directory() / f"{name}.html"
    if not NAME.match(name) or name.startswith("_"):
        flash("A template name uses letters, digits, - and _ (e.g. spring-offer).", "error")
    elif path.exists():
        flash(f"A template named {name} exists already.", "error")
    else:
        _write(path, STARTER)
        flash(f"Template {name} created from a starter. Edit it and save.", "info")
        return redirect(url_for("console.edit_template", name=name))
    return redirect(url_for("console.templates"))


@bp.route("/templates/<name>/edit", methods=["GET", "POST"])
def edit_template(name: str) -> Response | tuple[str, int]:
    name = _checked_name(name)
    html_path, text_path = _directory() / f"{name}.html", _directory() / f"{name}.txt"
    if request.method == "GET":
        text = text_path.read_text() if text_path.exists() else ""
        return render_template(
            "console/template_edit.html",
            name=name,
            html=html_path.read_text(),
            text=text,
            problem=None,
        ), 200
    html = request.form.get("html", "").replace("\r\n", "\n")
    # Layouts have no text field: a missing field leaves the .txt file alone.
    raw_text = request.form.get("text")
    text = None if raw_text is None else raw_text.replace("\r\n", "\n")
    problem = check_edit(name, html, text)
    if problem:
        return render_template(
            "console/template_edit.html", name=name, html=html, text=text or "", problem=problem
        ), 422
    _write(html_path, html)
    _set_text(text_path, text)
    flash(f"Saved {name}. It renders against the sample contact.", "info")
    if name.startswith("_"):
        return redirect(url_for("console.templates"))
    return redirect(url_for("console.template", name=name))


def sample() -> dict[str, Any]:
    """The engine's sample context, plus what the double opt-in email also gets
    (`topic`, `confirm_url`), so every template in the directory can be previewed."""
    context = sample_context()
    context.update(
        unsubscribe_url=PREVIEW_UNSUBSCRIBE,
        preferences_url=PREVIEW_PREFERENCES,
        topic="newsletter",
        confirm_url=PREVIEW_CONFIRM,
    )
    return context


def preview_context(name: str, contact: Contact | None) -> dict[str, Any]:
    """The sample context, with a real contact's view and a funnel that uses `name`."""
    context = sample()
    if contact is not None:
        context["contact"] = contacts_svc.render_view(contact)
    for key, stage in _uses().get(name, [])[:1]:
        context["funnel"] = {"key": key, "name": key}
        context["stage"] = {"key": stage}
    return context


def _contact_from(raw: str) -> tuple[Contact | None, str | None]:
    """The contact for a typed address, or None and why (an empty field means the sample)."""
    if not raw.strip():
        return None, None
    try:
        found = contacts_svc.find(database.session(), raw)
    except contacts_svc.InvalidEmail as exc:
        return None, f"{raw} is not an email address: {exc}"
    if found is None:
        return None, f"There is no contact {raw}; showing the sample contact instead."
    return found, None


@bp.get("/templates/<name>")
def template(name: str) -> Response | tuple[str, int]:
    name = _checked_name(name)
    if name.startswith("_"):  # a layout has nothing to preview on its own
        return redirect(url_for("console.edit_template", name=name))
    contact, note = _contact_from(request.args.get("contact", ""))
    rendered: Rendered | None = None
    problem = None
    try:
        rendered = Templates(_directory()).render(name, preview_context(name, contact))
    except TemplateProblem as exc:
        problem = str(exc)
    return render_template(
        "console/template.html",
        name=name,
        rendered=rendered,
        problem=problem,
        contact=contact,
        note=note,
        uses=_uses().get(name, []),
    ), 200 if problem is None else 422


def send_test(name: str, to: str, contact: Contact | None) -> None:
    """Render and send one test email; TemplateProblem or TransportError if it fails."""
    settings = EngineSettings.from_config(current_app.config)
    assert settings.smtp is not None
    rendered = Templates(_directory()).render(name, preview_context(name, contact))
    rendered = replace(rendered, subject=f"[Test] {rendered.subject}")
    # A test is not a message row: it gets an id of its own rather than row 0's.
    message = compose(
        rendered,
        to=to,
        mail_from=settings.mail_from,
        message_id=make_msgid(domain=sender_domain(settings.mail_from)),
        unsubscribe_url=PREVIEW_UNSUBSCRIBE,
        now=clock.utcnow(),
        extra_headers={"X-Nurture-Test": "yes"},
    )
    transport = SmtpTransport(settings.smtp)
    try:
        transport.send(message)
    finally:
        transport.close()


@bp.post("/templates/<name>/test")
def test_send(name: str) -> Response:
    name = _checked_name(name)
    contact, _note = _contact_from(request.form.get("contact", ""))
    back = url_for("console.template", name=name, contact=contact.email if contact else None)
    try:
        to = contacts_svc.normalize_email(request.form.get("to", ""))
    except contacts_svc.InvalidEmail as exc:
        flash(f"The test email was not sent: the address is not valid ({exc}).", "error")
        return redirect(back)
    try:
        send_test(name, to, contact)
    except TemplateProblem as exc:
        flash(f"The test email was not sent: {exc}.", "error")
    except TransportError as exc:
        flash(f"The test email was not sent: {exc}.", "error")
    else:
        flash(f"Test email sent to {to}.", "info")
    return redirect(back)
