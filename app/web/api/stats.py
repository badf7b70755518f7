"""The counts behind `GET /funnels/<key>/stats`: a handful of grouped queries.

Deliberately small: the analytics over time (charts, conversion between stages)
belong to app.services.stats; this answers "where are people now, and what went out".
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.engine.model import FunnelDef
from app.models import Enrollment, Funnel, FunnelVersion, Message
from app.web.api.schemas import StageCount, StatsOut

CONVERTED = "converted"
# An exit recorded without a label (there should be none) still counts as an exit.
NO_LABEL = "exited"


def _stage_order(session: Session, funnel: Funnel) -> list[str]:
    """Stage keys of the live version, else the newest, in the definition's order."""
    version = session.scalar(
        select(FunnelVersion)
        .where(FunnelVersion.funnel_id == funnel.id)
        .order_by((FunnelVersion.id == funnel.live_version_id).desc(), FunnelVersion.number.desc())
        .limit(1)
    )
    return [s.key for s in FunnelDef.from_dict(version.definition).stages] if version else []


def funnel_stats(session: Session, funnel: Funnel) -> StatsOut:
    per_stage: dict[str, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(Enrollment.stage_key, func.count())
            .where(Enrollment.funnel_id == funnel.id, Enrollment.status == "active")
            .group_by(Enrollment.stage_key)
        ).all()
    )
    exits: dict[str, int] = {}
    for label, n in session.execute(
        select(Enrollment.exit_label, func.count())
        .where(Enrollment.funnel_id == funnel.id, Enrollment.status == "exited")
        .group_by(Enrollment.exit_label)
    ).all():
        exits[label or NO_LABEL] = exits.get(label or NO_LABEL, 0) + n
    sends: dict[str, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(Message.status, func.count())
            .where(Message.funnel_id == funnel.id)
            .group_by(Message.status)
        ).all()
    )
    order = _stage_order(session, funnel)
    # Contacts can sit in a stage the shown version no longer has (a draft removed it).
    order += sorted(k for k in per_stage if k not in order)
    return StatsOut(
        key=funnel.key,
        stages=[StageCount(key=k, contacts=per_stage.get(k, 0)) for k in order],
        entered=sum(per_stage.values()) + sum(exits.values()),
        active=sum(per_stage.values()),
        exited=sum(exits.values()),
        converted=exits.get(CONVERTED, 0),
        exits=exits,
        sends=sends,
    )
