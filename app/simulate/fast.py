"""The fast simulator: the pure engine in memory, one contact at a time.

Contacts in a simulation never affect each other (caps, windows and stages are all
per contact, and each contact draws from its own random stream), so each one is run
to the end on its own, jumping straight to the next hour in which something of its
is due instead of ticking through every hour. Within that hour the database-backed
run's order is kept: planned events are ingested (in time order), then due timeouts
fire, then due emails are decided (by due time, then creation), then the contact
reacts to the stages it entered. That is what lets `exact.py` check this module.

No database and no email is rendered per send: each template is rendered once per
distinct context shape (template, stage, timezone, triggering event), so a template
that fails to render still shows up as failed messages.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.delivery.render import TemplateProblem, Templates
from app.engine import machine
from app.engine.caps import check_caps, parse_caps
from app.engine.model import Cap, FunnelDef, SendWindow, Trigger
from app.engine.schedule import earliest_send
from app.engine.window import window_zone
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


@dataclass(slots=True)
class _Event:
    at: datetime
    seq: int
    type: str
    properties: dict[str, Any]  # shared by every event of one trigger: read only
    shape: str  # type and properties, as the key of a render outcome

    def __lt__(self, other: _Event) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)


@dataclass(slots=True)
class _Mail:
    seq: int
    template: str
    stage: str
    due: datetime
    event: _Event | None
    status: str = "scheduled"


@dataclass(slots=True)
class _Enrollment:
    enrolled_at: datetime
    stage: str
    entered_at: datetime
    event: _Event | None  # the event that brought the contact into this stage
    timeout_at: datetime | None = None
    active: bool = True


@dataclass(slots=True)
class _Contact:
    index: int
    view: dict[str, Any]
    zone: ZoneInfo | None
    rng: Any
    events: list[_Event] = field(default_factory=list)  # a heap
    mails: list[_Mail] = field(default_factory=list)  # scheduled or deferred
    sends: list[datetime] = field(default_factory=list)
    enrollment: _Enrollment | None = None
    seen: bool = False  # ever enrolled (a funnel without `reentry` enrolls once)
    seq: int = 0
    moves: list[tuple[str, datetime]] = field(default_factory=list)  # this hour's arrivals

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class _Renders:
    """Whether each template renders, asked once per context shape."""

    def __init__(self, funnel: FunnelDef, templates: Templates, public_url: str) -> None:
        self.funnel, self.templates, self.public_url = funnel, templates, public_url
        self.known: dict[tuple[str, ...], bool] = {}

    def ok(self, mail: _Mail, view: Mapping[str, Any]) -> bool:
        event = mail.event
        key = (
            mail.template,
            mail.stage,
            str(view.get("timezone")),
            event.shape if event else "",
        )
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self._renders(mail, view)
        return found

    def _renders(self, mail: _Mail, view: Mapping[str, Any]) -> bool:
        event = mail.event
        context: dict[str, Any] = {
            "contact": dict(view),
            "event": {"type": event.type, "properties": event.properties}
            if event
            else {"type": None, "properties": {}},
            "funnel": {"key": self.funnel.key, "name": self.funnel.name},
            "stage": {"key": mail.stage},
            "unsubscribe_url": f"{self.public_url}/u/simulated",
            "preferences_url": f"{self.public_url}/p/simulated",
        }
        try:
            self.templates.render(mail.template, context)
        except TemplateProblem:
            return False
        return True


class _Rules:
    """The caps and the send window, asked through memos: most contacts share a
    timezone, their sends fall on the hour and few fall inside the caps' windows, so
    the same questions come up again and again."""

    def __init__(self, caps: tuple[Cap, ...], window: SendWindow | None) -> None:
        self.caps, self.window = caps, window
        self.capped_memo: dict[tuple[timedelta, ...], bool] = {}
        self.earliest_memo: dict[tuple[Any, ...], datetime] = {}

    def capped(self, sends: list[datetime], now: datetime) -> bool:
        """Do the caps hold back an email at `now`? (Only how long ago each send was
        matters, so that is the memo's key.)"""
        if not self.caps:
            return False
        key = tuple(now - s for s in sends)
        found = self.capped_memo.get(key)
        if found is None:
            found = self.capped_memo[key] = not check_caps(self.caps, sends, now).allowed
        return found

    def earliest(self, sends: list[datetime], now: datetime, zone: ZoneInfo | None) -> datetime:
        """`earliest_send(...).at`: when the caps and the window let an email go."""
        key = (now, zone, *sends)
        found = self.earliest_memo.get(key)
        if found is None:
            found = earliest_send(now, self.caps, sends, self.window, zone).at
            self.earliest_memo[key] = found
        return found


class FastRun:
    """One simulation: the funnel, the rules that apply to every contact, the totals."""

    def __init__(
        self, funnel: FunnelDef, config: Mapping[str, Any], *, days: int, seed: int
    ) -> None:
        self.funnel, self.days, self.seed = funnel, days, seed
        self.end = START + timedelta(days=days)
        global_caps = parse_caps(config.get("GLOBAL_CAPS", ""))
        self.caps: tuple[Cap, ...] = (*global_caps, *funnel.caps)
        self.horizon = max((c.per for c in self.caps), default=timedelta(0))
        self.rules = _Rules(self.caps, funnel.send_window)
        self.planned: dict[tuple[str, int], tuple[dict[str, Any], str]] = {}
        self.renders = _Renders(funnel, Templates(config["TEMPLATES_DIR"]), config["PUBLIC_URL"])
        self.summary = Summary(0, days, seed)

    def run(self, first: int, stop: int) -> Summary:
        """Simulate contacts `first` to `stop - 1`; the totals so far."""
        for index in range(first, stop):
            self.contact(index)
        self.summary.contacts += stop - first
        return self.summary

    def contact(self, index: int) -> None:
        """Run one contact from its entry to the end of the simulation."""
        rng = contact_rng(self.seed, index)
        timezone, entry_at = draw_contact(rng, self.days)
        view = {"first_name": None, "last_name": None, **contact_attributes(index)}
        view.update(email=contact_email(index), timezone=timezone, locale=None)
        window = self.funnel.send_window
        zone = window_zone(window, timezone) if window is not None else None
        c = _Contact(index, view, zone, rng)
        self.plan(c, entry_at, self.funnel.entry)
        step: datetime | None = _ceil(entry_at)
        while step is not None and step <= self.end:
            self.hour(c, step)
            step = _next_step(c, step)
        self.finish(c)

    def hour(self, c: _Contact, now: datetime) -> None:
        """One hour of the database-backed run, for one contact, in the same order."""
        while c.events and c.events[0].at <= now:
            self.apply_event(c, heapq.heappop(c.events))
        enrollment = c.enrollment
        while enrollment is not None and enrollment.active and enrollment.timeout_at is not None:
            if enrollment.timeout_at > now:
                break
            self.fire_timeout(c, enrollment)
        due = sorted((m for m in c.mails if m.due <= now), key=lambda m: (m.due, m.seq))
        for mail in due:
            self.decide(c, mail, now)
        c.mails = [m for m in c.mails if m.status in ("scheduled", "deferred")]
        moves, c.moves = c.moves, []
        for stage_key, at in moves:
            stage = self.funnel.stage(stage_key)
            planned = react(self.funnel, stage, c.rng) if stage is not None else None
            if planned is not None:
                self.plan(c, at + planned[0], planned[1])

    def plan(self, c: _Contact, at: datetime, trigger: Trigger) -> None:
        # The conditions belong to the funnel, which outlives the run: their id is a key.
        key = (trigger.on, id(trigger.where))
        found = self.planned.get(key)
        if found is None:
            props = satisfy(trigger.where)
            shape = f"{trigger.on} {json.dumps(props, sort_keys=True, default=str)}"
            found = self.planned[key] = (props, shape)
        heapq.heappush(c.events, _Event(at, c.next_seq(), trigger.on, *found))

    def apply_event(self, c: _Contact, event: _Event) -> None:
        """`ingest.apply_event` for one funnel: move or exit the enrollment, or enroll."""
        funnel, enrollment = self.funnel, c.enrollment
        if enrollment is not None and enrollment.active:
            if event.at < enrollment.enrolled_at:
                return
            step = machine.on_event(funnel, enrollment.stage, event.type, event.properties, c.view)
            if isinstance(step, machine.ExitGoal):
                self.exit(c, enrollment, step.label)
            elif isinstance(step, machine.Move) and event.at >= enrollment.entered_at:
                self.enter_stage(c, enrollment, step.to, event.at, event)
        elif machine.entry_matches(funnel, event.type, event.properties, c.view) and (
            funnel.reentry or not c.seen
        ):
            first = funnel.first_stage.key
            c.enrollment = _Enrollment(event.at, first, event.at, event)
            c.enrollment.timeout_at = machine.timeout_at(funnel, first, event.at)
            c.seen = True
            self.summary.enrolled += 1
            self.arrive(c, c.enrollment)

    def fire_timeout(self, c: _Contact, enrollment: _Enrollment) -> None:
        move = machine.on_timeout(self.funnel, enrollment.stage)
        due = enrollment.timeout_at
        if move is None or due is None:
            enrollment.timeout_at = None
            return
        self.enter_stage(c, enrollment, move.to, due, None)

    def enter_stage(
        self, c: _Contact, enrollment: _Enrollment, to: str, at: datetime, event: _Event | None
    ) -> None:
        """Rule 1: cancel what is unsent of the stage left, then arrive in `to` at `at`."""
        self.cancel(c)
        enrollment.stage, enrollment.entered_at = to, at
        enrollment.timeout_at = machine.timeout_at(self.funnel, to, at)
        if event is not None:
            enrollment.event = event
        self.arrive(c, enrollment)

    def arrive(self, c: _Contact, enrollment: _Enrollment) -> None:
        stage, at = enrollment.stage, enrollment.entered_at
        self.summary.entered[stage] += 1
        c.moves.append((stage, at))
        for _, template, due in machine.schedule(self.funnel, stage, at):
            c.mails.append(_Mail(c.next_seq(), template, stage, due, enrollment.event))

    def exit(self, c: _Contact, enrollment: _Enrollment, label: str) -> None:
        self.cancel(c)
        enrollment.active, enrollment.timeout_at = False, None
        self.summary.exits[label] += 1

    def cancel(self, c: _Contact) -> None:
        self.summary.statuses["cancelled"] += len(c.mails)
        c.mails = []

    def decide(self, c: _Contact, mail: _Mail, now: datetime) -> None:
        """The worker's `_decide` for one due email (consent always holds here)."""
        summary = self.summary
        if c.sends and c.sends[0] <= now - self.horizon:  # beyond every cap's window
            c.sends = [s for s in c.sends if s > now - self.horizon]
        capped = self.rules.capped(c.sends, now)
        if capped and self.funnel.on_cap == "skip":
            mail.status = "skipped"
        else:
            at = self.rules.earliest(c.sends, now, c.zone)
            if at > now:
                mail.status, mail.due = "deferred", at
                if capped:
                    summary.caps_hit += 1
                else:
                    summary.window_waits += 1
                return
            if not self.renders.ok(mail, c.view):
                mail.status = "failed"
            else:
                mail.status = "sent"
                c.sends.append(now)
                summary.sent[mail.template] += 1
        summary.statuses[mail.status] += 1

    def finish(self, c: _Contact) -> None:
        for mail in c.mails:
            self.summary.statuses[mail.status] += 1
        if c.enrollment is not None and c.enrollment.active:
            self.summary.now_in[c.enrollment.stage] += 1


def _ceil(at: datetime) -> datetime:
    """The first hourly tick at or after `at`."""
    return START + STEP * -((START - at) // STEP)


def _next_step(c: _Contact, now: datetime) -> datetime | None:
    """The next hour in which something of this contact is due, or None."""
    times = [m.due for m in c.mails]
    if c.events:
        times.append(c.events[0].at)
    enrollment = c.enrollment
    if enrollment is not None and enrollment.active and enrollment.timeout_at is not None:
        times.append(enrollment.timeout_at)
    if not times:
        return None
    return max(_ceil(min(times)), now + STEP)


def simulate_fast(
    funnel: FunnelDef, config: Mapping[str, Any], *, contacts: int, days: int, seed: int
) -> Summary:
    """Simulate `contacts` synthetic contacts for `days`; the summary."""
    summary = FastRun(funnel, config, days=days, seed=seed).run(0, contacts)
    summary.in_stage_order(funnel)
    return summary
