"""Console: the funnel list and a funnel's page with its diagram and live counts."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app import database
from app.models import Enrollment, Funnel, FunnelVersion, StageMove
from app.services import funnels as funnels_svc
from app.services.funnels import definition_of
from app.web import diagram
from app.web.console import bp


@dataclass(frozen=True)
class FunnelRow:
    funnel: Funnel
    live_number: int | None
    latest_number: int | None
    active: int
    entered: int


def funnel_or_404(session: Session, key: str) -> Funnel:
    funnel = session.scalar(select(Funnel).where(Funnel.key == key))
    if funnel is None:
        abort(404)
    return funnel


def shown_version(session: Session, funnel: Funnel) -> FunnelVersion | None:
    """The version a funnel page describes: the live one, else the newest."""
    return funnel.live_version or funnels_svc.latest_version(session, funnel)


def _counts(session: Session, *where: ColumnElement[bool]) -> dict[int, int]:
    query = select(StageMove.funnel_id, func.count()).where(*where).group_by(StageMove.funnel_id)
    return dict(session.execute(query).all())


def funnel_rows(session: Session) -> list[FunnelRow]:
    funnels = session.scalars(select(Funnel).order_by(Funnel.name, Funnel.key)).all()
    latest = dict(
        session.execute(
            select(FunnelVersion.funnel_id, func.max(FunnelVersion.number)).group_by(
                FunnelVersion.funnel_id
            )
        ).all()
    )
    active = dict(
        session.execute(
            select(Enrollment.funnel_id, func.count())
            .where(Enrollment.status == "active")
            .group_by(Enrollment.funnel_id)
        ).all()
    )
    entered = _counts(session, StageMove.reason == "entry")
    return [
        FunnelRow(
            f,
            f.live_version.number if f.live_version else None,
            latest.get(f.id),
            active.get(f.id, 0),
            entered.get(f.id, 0),
        )
        for f in funnels
    ]


def flow_of(session: Session, funnel_id: int) -> diagram.Flow:
    """Live counts per stage and moves along each transition, over every version (stages
    are matched by key, as publishing does)."""
    live = session.execute(
        select(Enrollment.stage_key, func.count())
        .where(Enrollment.funnel_id == funnel_id, Enrollment.status == "active")
        .group_by(Enrollment.stage_key)
    ).all()
    moves = session.execute(
        select(
            StageMove.from_stage,
            StageMove.to_stage,
            StageMove.reason,
            StageMove.label,
            func.count(),
        )
        .where(StageMove.funnel_id == funnel_id)
        .group_by(StageMove.from_stage, StageMove.to_stage, StageMove.reason, StageMove.label)
    ).all()
    entered: dict[str, int] = {}
    moved: dict[tuple[str, str, str], int] = {}
    exits: dict[str, int] = {}
    for source, target, reason, label, n in moves:
        if target is not None:
            entered[target] = entered.get(target, 0) + n
        if source is not None and target is not None:
            moved[(source, target, reason)] = moved.get((source, target, reason), 0) + n
        if reason == "exit":
            exits[label or "exited"] = exits.get(label or "exited", 0) + n
    return diagram.Flow(live=dict(live), entered=entered, moved=moved, exits=exits)


@bp.get("/")
def home() -> str:
    return render_template("console/funnels.html", rows=funnel_rows(database.session()))


@bp.get("/funnels/<key>")
def funnel(key: str) -> str:
    session = database.session()
    found = funnel_or_404(session, key)
    version = shown_version(session, found)
    definition = definition_of(session, version) if version else None
    flow = flow_of(session, found.id)
    svg = diagram.render(definition, flow) if definition else None
    enrolled = _counts(session, StageMove.reason == "entry", StageMove.funnel_id == found.id)
    return render_template(
        "console/funnel.html",
        funnel=found,
        version=version,
        definition=definition,
        flow=flow,
        svg=svg,
        ports=diagram.ports(definition, flow) if definition else {},
        describe=diagram.describe,
        describe_conditions=diagram.describe_conditions,
        enrolled=enrolled.get(found.id, 0),
        latest=funnels_svc.latest_version(session, found),
    )
