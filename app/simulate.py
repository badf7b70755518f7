"""`flask funnels simulate`: the real engine on an in-memory database, a fake clock and
a recording transport, driven by synthetic contacts. Deterministic for a seed.

The behaviour model is deliberately simple: each contact enters once during the
first half of the run; on entering any stage it takes one of that stage's event
transitions with probability ADVANCE, converts (an exit goal) with probability
CONVERT, or goes quiet (so time-based transitions fire).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import Base, make_engine, make_session_factory
from app.delivery.render import Templates, available
from app.delivery.transport import MemoryTransport
from app.engine.caps import parse_caps
from app.engine.definition import validate_text
from app.engine.model import Condition, FunnelDef, Trigger
from app.models import Contact, Enrollment, Message, StageMove, Subscription
from app.services.funnels import live_funnels, publish, save_version
from app.services.ingest import ingest_event
from app.settings import EngineSettings
from app.worker import tick

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so runs are comparable
STEP = timedelta(hours=1)
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
        lines = [
            f"Simulated {self.contacts} contacts over {self.days} days (seed {self.seed})",
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
        lines.insert(1, f"enrolled: {self.enrolled}")
        lines.append(
            "exits: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.exits.items())) or "none")
            + rate
        )
        return "\n".join(lines)


def _satisfy(conditions: tuple[Condition, ...]) -> dict[str, Any]:
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


@dataclass(order=True)
class _Planned:
    at: datetime
    seq: int
    email: str = field(compare=False)
    type: str = field(compare=False)
    properties: dict[str, Any] = field(compare=False)


class _World:
    def __init__(self, funnel: FunnelDef, rng: random.Random) -> None:
        self.funnel, self.rng = funnel, rng
        self.queue: list[_Planned] = []
        self.seq = 0
        self.last_move = 0

    def plan(
        self,
        at: datetime,
        email: str,
        trigger: Trigger | None,
        conditions: tuple[Condition, ...] = (),
    ) -> None:
        if trigger is None:
            return
        self.seq += 1
        heapq.heappush(
            self.queue,
            _Planned(at, self.seq, email, trigger.on, _satisfy(conditions or trigger.where)),
        )

    def react(self, s: Session, emails: Mapping[int, str]) -> None:
        """Decide what each contact who just entered a stage will do there."""
        moves = s.scalars(
            select(StageMove).where(StageMove.id > self.last_move).order_by(StageMove.id)
        ).all()
        for move in moves:
            self.last_move = move.id
            stage = self.funnel.stage(move.to_stage) if move.to_stage else None
            if stage is None:
                continue
            roll, delay = self.rng.random(), timedelta(minutes=self.rng.randint(30, 10 * 24 * 60))
            on_events = [t for t in stage.transitions if t.on is not None]
            if roll < CONVERT and self.funnel.exits:
                goal = self.rng.choice(self.funnel.exits)
                self.plan(move.at + delay, emails[move.contact_id], Trigger(goal.on, goal.where))
            elif roll < CONVERT + ADVANCE and on_events:
                self.plan(move.at + delay, emails[move.contact_id], self.rng.choice(on_events).on)


def simulate(
    source: str, config: Mapping[str, Any], *, contacts: int, days: int, seed: int
) -> Summary:
    templates_dir = config["TEMPLATES_DIR"]
    result = validate_text(source, templates=available(templates_dir))
    if result.funnel is None:
        raise SimulationError([p.format("funnel") for p in result.problems])
    funnel, rng = result.funnel, random.Random(seed)
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    settings = EngineSettings(
        public_url=config["PUBLIC_URL"],
        secret_key="simulation",
        mail_from="sim@nurture.invalid",
        templates=Templates(templates_dir),
        global_caps=parse_caps(config.get("GLOBAL_CAPS", "")),
        batch=1000,
    )
    emails = _setup(sessions, source, funnel, contacts, days, rng)
    world = _World(funnel, rng)
    for email in emails.values():
        world.plan(
            START + timedelta(minutes=rng.randint(0, days * 24 * 60 // 2)), email, funnel.entry
        )
    summary = Summary(contacts, days, seed)
    _run(sessions, settings, world, emails, START + timedelta(days=days), summary)
    _summarise(sessions, summary)
    engine.dispose()
    return summary


def _setup(
    sessions: sessionmaker[Session],
    source: str,
    funnel: FunnelDef,
    n: int,
    days: int,
    rng: random.Random,
) -> dict[int, str]:
    with sessions.begin() as s:
        saved, version, _ = save_version(s, source, START, templates=None)
        publish(s, saved, version, START)
        rows = [
            Contact(
                email=f"contact{i}@sim.example.com",
                attributes={"first_name": f"Contact {i}"},
                timezone=rng.choice(TIMEZONES),
                created_at=START,
                updated_at=START,
            )
            for i in range(n)
        ]
        s.add_all(rows)
        s.flush()
        s.add_all(
            Subscription(contact_id=c.id, topic=funnel.topic, status="subscribed", updated_at=START)
            for c in rows
        )
        return {c.id: c.email for c in rows}


def _run(
    sessions: sessionmaker[Session],
    settings: EngineSettings,
    world: _World,
    emails: Mapping[int, str],
    end: datetime,
    summary: Summary,
) -> None:
    now, transport = START, MemoryTransport()
    while now <= end:
        with sessions.begin() as s:
            funnels = live_funnels(s)
            while world.queue and world.queue[0].at <= now:
                item = heapq.heappop(world.queue)
                ingest_event(
                    s,
                    email=item.email,
                    type=item.type,
                    properties=item.properties,
                    occurred_at=item.at,
                    now=now,
                    source="simulation",
                    funnels=funnels,
                )
        report = tick(sessions, now, transport, settings, worker="simulator")
        summary.caps_hit += report.counts.get("capped", 0)
        summary.window_waits += report.counts.get("outside_window", 0)
        transport.sent.clear()  # keep memory flat: the database has the record
        with sessions() as s:
            world.react(s, emails)
        now += STEP


def _summarise(sessions: sessionmaker[Session], summary: Summary) -> None:
    with sessions() as s:
        summary.enrolled = (
            s.scalar(select(func.count()).select_from(StageMove).where(StageMove.reason == "entry"))
            or 0
        )
        for stage, n in s.execute(
            select(StageMove.to_stage, func.count())
            .where(StageMove.to_stage.is_not(None))
            .group_by(StageMove.to_stage)
            .order_by(func.min(StageMove.id))
        ):
            summary.entered[stage] = n
        for stage, n in s.execute(
            select(Enrollment.stage_key, func.count())
            .where(Enrollment.status == "active")
            .group_by(Enrollment.stage_key)
        ):
            summary.now_in[stage] = n
        for label, n in s.execute(
            select(Enrollment.exit_label, func.count())
            .where(Enrollment.status == "exited")
            .group_by(Enrollment.exit_label)
        ):
            summary.exits[label] = n
        for template, status, n in s.execute(
            select(Message.template, Message.status, func.count()).group_by(
                Message.template, Message.status
            )
        ):
            summary.statuses[status] += n
            if status == "sent":
                summary.sent[template] += n
