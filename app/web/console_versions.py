"""Console: a funnel's version history, a diff between any two versions, publishing."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import clock, database
from app.engine.model import FunnelDef
from app.models import Enrollment, Funnel, FunnelVersion
from app.services import funnels as funnels_svc
from app.web.console import bp
from app.web.console_funnels import funnel_or_404


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add" | "del" | "hunk" | "head" | "same"
    text: str


def _version_or_404(session: Session, funnel: Funnel, number: int) -> FunnelVersion:
    version = session.scalar(
        select(FunnelVersion).where(
            FunnelVersion.funnel_id == funnel.id, FunnelVersion.number == number
        )
    )
    if version is None:
        abort(404)
    return version


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def publish_check(session: Session, funnel: Funnel, new: FunnelDef) -> tuple[bool, str]:
    """(can publish, why) in plain words: the same stranded-contact rule as publish."""
    lost = funnels_svc.stranded(session, funnel, new)
    if lost:
        parts = [f"{_plural(n, 'contact')} in stage “{key}”" for key, n in sorted(lost.items())]
        first = sorted(lost)[0]
        verb = "is" if sum(lost.values()) == 1 else "are"
        return False, (
            f"This version cannot be published yet: there {verb} "
            f"{' and '.join(parts)}, which this version removes, and it does not say where they "
            f"should go. Add a line such as moved: {{{first}: <stage>}} to the definition, "
            "naming a stage this version keeps, and save a new version."
        )
    counts = dict(
        session.execute(
            select(Enrollment.stage_key, func.count())
            .where(Enrollment.funnel_id == funnel.id, Enrollment.status == "active")
            .group_by(Enrollment.stage_key)
        ).all()
    )
    moving = {k: n for k, n in counts.items() if new.stage(k) is None}
    if not counts:
        return True, "No one is in this funnel yet, so publishing moves no one."
    text = (
        f"Publishing keeps {_plural(sum(counts.values()) - sum(moving.values()), 'contact')} "
        "in the stages they are in now."
    )
    for key, n in sorted(moving.items()):
        text += (
            f" {_plural(n, 'contact')} in the removed stage “{key}” will move to "
            f"“{new.moved[key]}”."
        )
    return True, text


def unified(a: FunnelVersion, b: FunnelVersion) -> list[DiffLine]:
    lines = difflib.unified_diff(
        a.source.splitlines(),
        b.source.splitlines(),
        fromfile=f"version {a.number}",
        tofile=f"version {b.number}",
        lineterm="",
        n=3,
    )
    out = []
    for line in lines:
        if line.startswith(("---", "+++")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = {"+": "add", "-": "del"}.get(line[:1], "same")
        out.append(DiffLine(kind, line))
    return out


@bp.get("/funnels/<key>/versions")
def versions(key: str) -> str:
    session = database.session()
    funnel = funnel_or_404(session, key)
    return render_template(
        "console/versions.html", funnel=funnel, versions=funnels_svc.versions(session, funnel)
    )


@bp.get("/funnels/<key>/versions/<int:number>")
def version(key: str, number: int) -> str:
    session = database.session()
    funnel = funnel_or_404(session, key)
    found = _version_or_404(session, funnel, number)
    live = funnel.live_version_id == found.id
    can_publish, why = (
        (True, "")
        if live
        else publish_check(session, funnel, funnels_svc.definition_of(session, found))
    )
    return render_template(
        "console/version.html",
        funnel=funnel,
        version=found,
        live=live,
        can_publish=can_publish,
        why=why,
        lines=found.source.splitlines(),
    )


@bp.post("/funnels/<key>/versions/<int:number>/publish")
def publish(key: str, number: int) -> Response:
    session = database.session()
    funnel = funnel_or_404(session, key)
    found = _version_or_404(session, funnel, number)
    can_publish, why = publish_check(session, funnel, funnels_svc.definition_of(session, found))
    if not can_publish:
        flash(why, "error")
        return redirect(url_for("console.version", key=key, number=number))
    try:
        moved = funnels_svc.publish(session, funnel, found, clock.utcnow())
    except funnels_svc.PublishRefused as exc:  # someone entered a removed stage meanwhile
        session.rollback()
        flash(f"Version {number} was not published: {exc}.", "error")
        return redirect(url_for("console.version", key=key, number=number))
    session.commit()
    moved_text = f" {_plural(moved, 'contact')} moved out of removed stages." if moved else ""
    flash(f"Version {number} is live.{moved_text}", "info")
    return redirect(url_for("console.funnel", key=key))


@bp.get("/funnels/<key>/diff")
def diff(key: str) -> str:
    session = database.session()
    funnel = funnel_or_404(session, key)
    all_versions = funnels_svc.versions(session, funnel)
    numbers = [v.number for v in all_versions]
    newest = numbers[0] if numbers else 0
    a = request.args.get("a", type=int) or (numbers[1] if len(numbers) > 1 else newest)
    b = request.args.get("b", type=int) or newest
    old, new = _version_or_404(session, funnel, a), _version_or_404(session, funnel, b)
    return render_template(
        "console/diff.html",
        funnel=funnel,
        versions=all_versions,
        a=old,
        b=new,
        lines=unified(old, new),
    )
