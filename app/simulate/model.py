"""What the simulator's synthetic contacts do, and what a run reports.

Both simulators (the fast one in `fast.py`, the database-backed one in `exact.py`)
draw from the same per-contact random stream in the same order, so for a seed they
plan the same events for the same contact and can be compared summary for summary.

The behaviour model is deliberately simple: each contact enters once during the
first half of the run; on entering any stage it takes one of that stage's event
transitions with probability ADVANCE, converts (an exit goal) with probability
CONVERT, or goes quiet (so time-based transitions fire).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.delivery.render import available
from app.engine.definition import validate_text
from app.engine.model import Condition, FunnelDef, Stage, Trigger

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so runs are comparable
STEP = timedelta(hours=1)  # how often the database-backed run ticks
ADVANCE, CONVERT = 0.45, 0.05
TIMEZONES = ("Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo", None)


class SimulationError(ValueError):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class Summary:
    contacts: int
    days: int
    seed: int
    entered: Counter[str] = field(default_factory=Counter)
    now_in: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    caps_hit: int = 0
    window_waits: int = 0
    enrolled: int = 0

    def format(self) -> str:
        """The report `flask funnels simulate` prints (stages in the funnel's order)."""
        lines = [
            f"Simulated {self.contacts} contacts over {self.days} days (seed {self.seed})",
            f"enrolled: {self.enrolled}",
            "",
            "stage: entered / in it at the end",
        ]
        for stage in self.entered:
            lines.append(f"  {stage}: {self.entered[stage]} / {self.now_in.get(stage, 0)}")
        lines += ["", f"emails sent: {sum(self.sent.values())}"]
        lines += [f"  {template}: {n}" for template, n in sorted(self.sent.items())]
        other = {k: v for k, v in sorted(self.statuses.items()) if k != "sent"}
        lines.append(
            "messages by status: "
            + (", ".join(f"{k} {v}" for k, v in other.items()) or "none unsent")
        )
        lines.append(
            f"caps hit: {self.caps_hit} deferrals; waits for the send window: {self.window_waits}"
        )
        rate = (
            f" ({100 * sum(self.exits.values()) / self.enrolled:.1f}% of enrolled)"
            if self.enrolled
            else ""
        )
        lines.append(
            "exits: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.exits.items())) or "none")
            + rate
        )
        return "\n".join(lines)

    def in_stage_order(self, funnel: FunnelDef) -> None:
        """Order `entered` as the funnel lists its stages, whatever order they came in."""
        keys = [s.key for s in funnel.stages if s.key in self.entered]
        self.entered = Counter({key: self.entered[key] for key in keys})


def load_funnel(source: str, templates_dir: str) -> FunnelDef:
    """The funnel to simulate, or SimulationError with every problem as `funnel:line: ...`."""
    result = validate_text(source, templates=available(templates_dir))
    if result.funnel is None:
        raise SimulationError([p.format("funnel") for p in result.problems])
    segments = sorted(result.funnel.segments())
    if segments:
        # Synthetic contacts only send events; nobody would ever join a segment.
        raise SimulationError([_segment_problem(source, key) for key in segments])
    return result.funnel


def _segment_problem(source: str, key: str) -> str:
    line = next(
        (
            n
            for n, text in enumerate(source.splitlines(), 1)
            if re.search(rf"segment:\s*{re.escape(key)}\b", text)
        ),
        None,
    )
    where = "funnel" if line is None else f"funnel:{line}"
    return (
        f"{where}: segment: the simulator's contacts only send events, so a funnel on "
        f"segment '{key}' cannot be simulated"
    )


def contact_rng(seed: int, index: int) -> random.Random:
    """Contact `index`'s own random stream: the same whichever simulator runs it."""
    return random.Random(f"{seed}:{index}")


def contact_email(index: int) -> str:
    return f"contact{index}@sim.example.com"


def contact_attributes(index: int) -> dict[str, Any]:
    return {"first_name": f"Contact {index}"}


def draw_contact(rng: random.Random, days: int) -> tuple[str | None, datetime]:
    """A new contact's timezone and when it enters (the first draws of its stream)."""
    timezone = rng.choice(TIMEZONES)
    return timezone, START + timedelta(minutes=rng.randint(0, days * 24 * 60 // 2))


def react(funnel: FunnelDef, stage: Stage, rng: random.Random) -> tuple[timedelta, Trigger] | None:
    """What a contact who just entered `stage` does next: (delay, event), or None."""
    roll, delay = rng.random(), timedelta(minutes=rng.randint(30, 10 * 24 * 60))
    on_events = [t.on for t in stage.transitions if t.on is not None]
    if roll < CONVERT and funnel.exits:
        goal = rng.choice(funnel.exits)
        return delay, Trigger(goal.on, goal.where)
    if roll < CONVERT + ADVANCE and on_events:
        return delay, rng.choice(on_events)
    return None


def satisfy(conditions: tuple[Condition, ...]) -> dict[str, Any]:
    """Event properties that meet `conditions` (contact.* conditions are left out)."""
    props: dict[str, Any] = {}
    for c in conditions:
        if c.path.startswith("contact."):
            continue
        if c.op in ("eq", "gte", "lte", "contains"):
            props[c.path] = c.value
        elif c.op == "gt":
            props[c.path] = c.value + 1
        elif c.op == "lt":
            props[c.path] = c.value - 1
        elif c.op == "in":
            props[c.path] = c.value[0]
        elif c.op == "ne" and c.path not in props:
            props[c.path] = f"not-{c.value}"
    return props
