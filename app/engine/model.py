"""The parsed, validated shape of a funnel definition.

These frozen dataclasses are what the rest of the engine reads. ``definition.parse``
builds them from YAML/JSON; ``FunnelDef.to_dict`` gives the canonical JSON stored in
a funnel version (and ``FunnelDef.from_dict`` reads it back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

# Operators a `where` condition may use. A bare value means `eq`.
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Condition:
    """One property test: ``properties[path] <op> value``.

    ``path`` is a property name; a dotted name such as ``contact.country`` reads a
    contact attribute instead of an event property.
    """

    path: str
    op: str
    value: Any


@dataclass(frozen=True)
class Trigger:
    """An event type plus the conditions its properties must meet (all of them).

    With ``segment`` set, the trigger is joining that segment instead (``on`` is then
    empty, which no event type can be).
    """

    on: str
    where: tuple[Condition, ...] = ()
    segment: str | None = None


@dataclass(frozen=True)
class Exit:
    """An exit goal: the matching event (or joining ``segment``) ends the enrollment
    with label ``as_``."""

    on: str
    where: tuple[Condition, ...] = ()
    as_: str = "exited"
    segment: str | None = None


@dataclass(frozen=True)
class Cap:
    """At most ``max`` emails per ``per`` window."""

    max: int
    per: timedelta

    def __str__(self) -> str:
        from app.engine.durations import format_duration

        return f"{self.max}/{format_duration(self.per)}"


@dataclass(frozen=True)
class SendWindow:
    """Days of the week (0 = Monday) and a local time range ``[start, end)``.

    ``timezone`` is ``"contact"`` (use the contact's, falling back to
    ``fallback_timezone``) or an IANA name.
    """

    days: frozenset[int] = frozenset(range(7))
    start: time = time(0, 0)
    end: time = time(0, 0)  # 00:00 as end means "until midnight"
    timezone: str = "contact"
    fallback_timezone: str = "UTC"


@dataclass(frozen=True)
class EmailStep:
    template: str
    after: timedelta


@dataclass(frozen=True)
class Transition:
    """``on`` (an event trigger), ``after`` (a timeout) or ``segment`` (joining that
    segment: ``if: {segment: key}`` in the syntax), plus ``to``."""

    to: str
    on: Trigger | None = None
    after: timedelta | None = None
    segment: str | None = None


@dataclass(frozen=True)
class Stage:
    key: str
    emails: tuple[EmailStep, ...] = ()
    transitions: tuple[Transition, ...] = ()


@dataclass(frozen=True)
class FunnelDef:
    key: str
    name: str
    topic: str
    entry: Trigger
    stages: tuple[Stage, ...]
    exits: tuple[Exit, ...] = ()
    caps: tuple[Cap, ...] = ()
    send_window: SendWindow | None = None
    priority: int = 0
    reentry: bool = False
    on_cap: str = "defer"  # or "skip"
    tracking: bool = True
    description: str = ""
    # Extension key `moved`: stages removed since an earlier version, mapped to the
    # stage their contacts move to when this version is published.
    moved: dict[str, str] = field(default_factory=dict)

    def timeout(self, stage_key: str) -> Transition | None:
        """The earliest time-based transition of a stage, or None."""
        stage = self.stage(stage_key)
        timed = [t for t in stage.transitions if t.after is not None] if stage else []
        return min(timed, key=lambda t: t.after or timedelta(0)) if timed else None

    @property
    def first_stage(self) -> Stage:
        return self.stages[0]

    def stage(self, key: str) -> Stage | None:
        for stage in self.stages:
            if stage.key == key:
                return stage
        return None

    def templates(self) -> set[str]:
        return {email.template for stage in self.stages for email in stage.emails}

    def segments(self) -> set[str]:
        """The segment keys this funnel enters, moves or exits on."""
        keys = {self.entry.segment, *(goal.segment for goal in self.exits)}
        keys |= {t.segment for stage in self.stages for t in stage.transitions}
        return {key for key in keys if key is not None}

    def to_dict(self) -> dict[str, Any]:
        from app.engine.serialize import funnel_to_dict

        return funnel_to_dict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> FunnelDef:
        from app.engine.serialize import funnel_from_dict

        return funnel_from_dict(data)
