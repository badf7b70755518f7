"""Funnel versions: save, publish (without stranding anyone), export, and the live set."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.engine.definition import Problem, validate_text
from app.engine.model import FunnelDef
from app.models import Enrollment, Funnel, FunnelVersion
from app.services.cache import Definitions

# Versions are immutable, so their parsed definitions can be cached by id forever,
# per database: one process may hold several (the simulator, tests).
_DEFINITIONS = Definitions(FunnelVersion, FunnelDef.from_dict)


class DefinitionInvalid(ValueError):
    """The definition has problems; `problems` lists them with lines and fields."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        super().__init__("; ".join(p.format("funnel") for p in problems))
        self.problems = problems


class PublishRefused(ValueError):
    """Publishing would strand contacts; the message says which and what to add."""


@dataclass(frozen=True)
class LiveFunnel:
    funnel_id: int
    version_id: int
    definition: FunnelDef


def definition_of(session: Session, version: FunnelVersion) -> FunnelDef:
    return _DEFINITIONS.of(session, version)


def live_funnels(session: Session) -> list[LiveFunnel]:
    """Every published funnel, higher priority first (then by key, for determinism)."""
    # Read on every event batch: two columns, and a version's definition (a large JSON
    # document) only when it is not cached yet.
    rows = session.execute(select(Funnel.id, Funnel.live_version_id).where(Funnel.status == "live"))
    live = [
        LiveFunnel(fid, vid, version_definition(session, vid))
        for fid, vid in rows
        if vid is not None
    ]
    live.sort(key=lambda f: (-f.definition.priority, f.definition.key))
    return live


def version_definition(session: Session, version_id: int) -> FunnelDef:
    return _DEFINITIONS.of_id(session, version_id)


def validate(source: str, templates: set[str] | None) -> FunnelDef:
    """The parsed definition, or DefinitionInvalid with every problem."""
    result = validate_text(source, templates=templates)
    if result.funnel is None:
        raise DefinitionInvalid(result.problems)
    return result.funnel


def check_segments(session: Session, definition: FunnelDef, source: str) -> None:
    """DefinitionInvalid if the funnel starts, moves or exits on a segment that does not
    exist (the pure validator cannot know which segments the database holds)."""
    from app.models import Segment

    wanted = definition.segments()
    if not wanted:
        return
    known = set(session.scalars(select(Segment.key).where(Segment.key.in_(wanted))))
    missing = sorted(wanted - known)
    if missing:
        raise DefinitionInvalid(tuple(_missing_segment(source, key) for key in missing))


def _missing_segment(source: str, key: str) -> Problem:
    line = next(
        (
            n
            for n, text in enumerate(source.splitlines(), 1)
            if re.search(rf"segment:\s*{re.escape(key)}\b", text)
        ),
        None,
    )
    return Problem(
        line,
        "segment",
        f"there is no segment '{key}': load it first (flask segments load segments/{key}.yaml)",
    )


def versions(session: Session, funnel: Funnel) -> list[FunnelVersion]:
    """A funnel's versions, newest first."""
    return list(session.scalars(_newest_first(funnel)))


def latest_version(session: Session, funnel: Funnel) -> FunnelVersion | None:
    return session.scalar(_newest_first(funnel).limit(1))


def _newest_first(funnel: Funnel) -> Select[tuple[FunnelVersion]]:
    return (
        select(FunnelVersion)
        .where(FunnelVersion.funnel_id == funnel.id)
        .order_by(FunnelVersion.number.desc())
    )


def save_version(
    session: Session,
    source: str,
    now: datetime,
    *,
    templates: set[str] | None,
    created_by: str | None = None,
) -> tuple[Funnel, FunnelVersion, bool]:
    """Store `source` as the funnel's next version; (funnel, version, created).

    If the newest version already has the same definition it is returned as is, so
    loading the same file twice makes no new version.
    """
    definition = validate(source, templates)
    check_segments(session, definition, source)
    funnel = session.scalar(select(Funnel).where(Funnel.key == definition.key))
    if funnel is None:
        funnel = Funnel(
            key=definition.key, name=definition.name, status="draft", created_at=now, updated_at=now
        )
        session.add(funnel)
        session.flush()
    latest = latest_version(session, funnel)
    canonical = definition.to_dict()
    if latest is not None and latest.definition == canonical:
        return funnel, latest, False
    version = FunnelVersion(
        funnel_id=funnel.id,
        number=(latest.number + 1) if latest else 1,
        source=source,
        definition=canonical,
        created_at=now,
        created_by=created_by,
    )
    session.add(version)
    funnel.name = definition.name
    funnel.updated_at = now
    session.flush()
    return funnel, version, True


def stranded(session: Session, funnel: Funnel, new: FunnelDef) -> dict[str, int]:
    """Stages with active contacts that `new` neither keeps nor maps with `moved`."""
    counts = session.execute(
        select(Enrollment.stage_key, func.count())
        .where(Enrollment.funnel_id == funnel.id, Enrollment.status == "active")
        .group_by(Enrollment.stage_key)
    ).all()
    return {key: n for key, n in counts if new.stage(key) is None and key not in new.moved}


def publish(session: Session, funnel: Funnel, version: FunnelVersion, now: datetime) -> int:
    """Make `version` live; returns how many contacts were moved out of removed stages.

    Contacts in stages the new version keeps stay where they are (and keep what is
    already scheduled); contacts in removed stages move to the stage `moved` names.
    """
    from app.services.ingest import enter_stage

    new = definition_of(session, version)
    lost = stranded(session, funnel, new)
    if lost:
        parts = [
            f"{n} contact{'s' if n != 1 else ''} in stage '{key}'"
            for key, n in sorted(lost.items())
        ]
        raise PublishRefused(
            f"publishing would strand {', '.join(parts)}, which this version removes: "
            f"add `moved: {{{next(iter(sorted(lost)))}: <stage>}}` to say where they go"
        )
    moved = 0
    enrollments = session.scalars(
        select(Enrollment).where(Enrollment.funnel_id == funnel.id, Enrollment.status == "active")
    ).all()
    for enrollment in enrollments:
        enrollment.version_id = version.id
        if new.stage(enrollment.stage_key) is None:
            enter_stage(
                session, enrollment, new, new.moved[enrollment.stage_key], now, reason="publish"
            )
            moved += 1
        else:
            timeout = new.timeout(enrollment.stage_key)
            enrollment.timeout_at = (
                enrollment.stage_entered_at + timeout.after if timeout and timeout.after else None
            )
    funnel.live_version_id = version.id
    funnel.status = "live"
    funnel.updated_at = now
    version.published_at = version.published_at or now
    session.flush()
    return moved


def load_file(
    session: Session, path: Path, now: datetime, templates: set[str] | None
) -> tuple[Funnel, FunnelVersion, bool]:
    """Validate and publish one definition file; (funnel, version, new version made)."""
    funnel, version, created = save_version(session, path.read_text(), now, templates=templates)
    if funnel.live_version_id != version.id:
        publish(session, funnel, version, now)
    return funnel, version, created


def export(session: Session, key: str) -> str | None:
    """The source text of the live version (or the newest, if never published)."""
    funnel = session.scalar(select(Funnel).where(Funnel.key == key))
    if funnel is None:
        return None
    if funnel.live_version is not None:
        return funnel.live_version.source
    latest = latest_version(session, funnel)
    return latest.source if latest else None
