"""The stage machine: what an event or a timeout does to an enrollment.

Pure decisions only; `app.services.ingest` applies them to the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.engine.conditions import matches
from app.engine.model import FunnelDef


@dataclass(frozen=True)
class Move:
    """Move the enrollment to stage `to`."""

    to: str


@dataclass(frozen=True)
class ExitGoal:
    """End the enrollment, recorded with `label` (e.g. "converted")."""

    label: str


Step = Move | ExitGoal


def entry_matches(
    funnel: FunnelDef, event_type: str, properties: Mapping[str, Any], contact: Mapping[str, Any]
) -> bool:
    entry = funnel.entry
    # A segment entry has no event type: no event, even an odd empty one, enrolls.
    return (
        entry.segment is None
        and entry.on == event_type
        and matches(entry.where, properties, contact)
    )


def entry_on_segment(funnel: FunnelDef, segment: str) -> bool:
    """Does joining `segment` enroll contacts in this funnel?"""
    return funnel.entry.segment == segment


def on_segment(funnel: FunnelDef, stage_key: str, segment: str) -> Step | None:
    """What joining `segment` does to a contact in `stage_key`, with the same
    precedence as events: exit goals first, then the first matching transition."""
    for goal in funnel.exits:
        if goal.segment == segment:
            return ExitGoal(goal.as_)
    stage = funnel.stage(stage_key)
    if stage is None:
        return None
    for transition in stage.transitions:
        if transition.segment == segment:
            return Move(transition.to)
    return None


def on_event(
    funnel: FunnelDef,
    stage_key: str,
    event_type: str,
    properties: Mapping[str, Any],
    contact: Mapping[str, Any],
) -> Step | None:
    """What an event does to a contact in `stage_key`: exit goals win over
    transitions; among transitions the first listed that matches wins."""
    for goal in funnel.exits:
        if (
            goal.segment is None
            and goal.on == event_type
            and matches(goal.where, properties, contact)
        ):
            return ExitGoal(goal.as_)
    stage = funnel.stage(stage_key)
    if stage is None:
        return None
    for transition in stage.transitions:
        trigger = transition.on
        if trigger and trigger.on == event_type and matches(trigger.where, properties, contact):
            return Move(transition.to)
    return None


def timeout_at(funnel: FunnelDef, stage_key: str, entered_at: datetime) -> datetime | None:
    """When the stage's earliest time-based transition fires, or None."""
    transition = funnel.timeout(stage_key)
    if transition is None or transition.after is None:
        return None
    return entered_at + transition.after


def on_timeout(funnel: FunnelDef, stage_key: str) -> Move | None:
    transition = funnel.timeout(stage_key)
    return Move(transition.to) if transition else None


def schedule(
    funnel: FunnelDef, stage_key: str, entered_at: datetime
) -> list[tuple[int, str, datetime]]:
    """The emails a stage visit sends: (step index, template, due time)."""
    stage = funnel.stage(stage_key)
    if stage is None:
        return []
    return [(i, e.template, entered_at + e.after) for i, e in enumerate(stage.emails)]
