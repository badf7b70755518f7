"""The database-backed simulator: the real engine (`ingest_event` and the worker's
`tick`) on an in-memory SQLite database, ticking every simulated hour, rendering and
composing every email into a recording transport.

It is the reference the fast simulator (`fast.py`) is tested against, and costs about
a millisecond or two per email, so it is for small runs (`--exact` on the CLI).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import Base, make_engine, make_session_factory
from app.delivery.render import Templates
from app.delivery.transport import MemoryTransport
from app.engine.caps import parse_caps
from app.engine.model import FunnelDef, Trigger
from app.models import Contact, Enrollment, Message, StageMove, Subscription
from app.services.funnels import live_funnels, publish, save_version
from app.services.ingest import ingest_event
from app.settings import EngineSettings
from app.simulate.model import (
    START,
    STEP,
    Summary,
    contact_attributes,
    contact_email,
    contact_rng,
    draw_contact,
    react,
    satisfy,
)
from app.worker import tick


@dataclass(order=True)
class _Planned:
    at: datetime
    seq: int
    email: str = field(compare=False)
    type: str = field(compare=False)
    properties: dict[str, Any] = field(compare=False)


class _World:
    def __init__(self, funnel: FunnelDef, rngs: Mapping[int, random.Random]) -> None:
        self.funnel, self.rngs = funnel, rngs  # contact id -> that contact's stream
        self.queue: list[_Planned] = []
        self.seq = 0
        self.last_move = 0

    def plan(self, at: datetime, email: str, trigger: Trigger) -> None:
        self.seq += 1
        heapq.heappush(
            self.queue, _Planned(at, self.seq, email, trigger.on, satisfy(trigger.where))
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
            planned = react(self.funnel, stage, self.rngs[move.contact_id])
            if planned is not None:
                self.plan(move.at + planned[0], emails[move.contact_id], planned[1])


def simulate_exact(
    funnel: FunnelDef,
    source: str,
    config: Mapping[str, Any],
    *,
    contacts: int,
    days: int,
    seed: int,
) -> Summary:
    """Run the real engine over `contacts` synthetic contacts for `days`; the summary."""
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    settings = EngineSettings(
        public_url=config["PUBLIC_URL"],
        secret_key="simulation",
        mail_from="sim@nurture.invalid",
        templates=Templates(config["TEMPLATES_DIR"]),
        global_caps=parse_caps(config.get("GLOBAL_CAPS", "")),
        batch=1000,
    )
    rngs, emails, entries = _setup(sessions, source, funnel, contacts, days, seed)
    world = _World(funnel, rngs)
    for contact_id, email in emails.items():
        world.plan(entries[contact_id], email, funnel.entry)
    summary = Summary(contacts, days, seed)
    _run(sessions, settings, world, emails, START + timedelta(days=days), summary)
    _summarise(sessions, summary)
    summary.in_stage_order(funnel)
    engine.dispose()
    return summary


def _setup(
    sessions: sessionmaker[Session],
    source: str,
    funnel: FunnelDef,
    n: int,
    days: int,
    seed: int,
) -> tuple[dict[int, random.Random], dict[int, str], dict[int, datetime]]:
    """Publish the funnel and create the contacts; per contact id: its random stream,
    its address and when it enters."""
    with sessions.begin() as s:
        saved, version, _ = save_version(s, source, START, templates=None)
        publish(s, saved, version, START)
        drawn = []
        for i in range(n):
            rng = contact_rng(seed, i)
            timezone, entry = draw_contact(rng, days)
            contact = Contact(
                email=contact_email(i),
                attributes=contact_attributes(i),
                timezone=timezone,
                created_at=START,
                updated_at=START,
            )
            drawn.append((contact, rng, entry))
        s.add_all(c for c, _, _ in drawn)
        s.flush()
        s.add_all(
            Subscription(contact_id=c.id, topic=funnel.topic, status="subscribed", updated_at=START)
            for c, _, _ in drawn
        )
        return (
            {c.id: rng for c, rng, _ in drawn},
            {c.id: c.email for c, _, _ in drawn},
            {c.id: entry for c, _, entry in drawn},
        )


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
        summary.enrolled = sum(_count(s, StageMove.reason, StageMove.reason == "entry").values())
        summary.entered = _count(s, StageMove.to_stage, StageMove.to_stage.is_not(None))
        summary.now_in = _count(s, Enrollment.stage_key, Enrollment.status == "active")
        summary.exits = _count(s, Enrollment.exit_label, Enrollment.status == "exited")
        for template, status, n in s.execute(
            select(Message.template, Message.status, func.count()).group_by(
                Message.template, Message.status
            )
        ):
            summary.statuses[status] += n
            if status == "sent":
                summary.sent[template] += n


def _count(s: Session, column: Any, *where: Any) -> Counter[str]:
    """How many rows have each value of `column`, among those matching `where`."""
    rows = s.execute(select(column, func.count()).where(*where).group_by(column))
    return Counter({value: n for value, n in rows if value is not None})
