"""The batch path (`ingest_batch`) does exactly what the per-event path
(`ingest_event`, applied in the same order) does: the same events stored, the same
enrollments, stage moves, emails, segment joins and leaves, and the same answers.

Each stream is ingested twice into one database: event by event for contacts
a0..a5, in batches for b0..b5 (contacts never affect one another), and the two
halves are compared with the prefixes taken off.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import (
    Contact,
    Enrollment,
    Event,
    Funnel,
    Message,
    Segment,
    SegmentChange,
    SegmentCheck,
    SegmentMember,
    StageMove,
)
from app.services import contacts as contacts_svc
from app.services.ingest import ingest_event
from app.services.ingest_batch import Item, ingest_batch, processing_order
from app.services.segment_membership import refresh
from tests.conftest import at
from tests.helpers import ROOT, publish
from tests.segment_helpers import SEGMENTS, load_segment

T0 = at("2026-03-02 09:00")
PEOPLE = 6
VIDEO_FANS = """key: video-fans
name: Watched the explainer
match: {in_stage: {funnel: b2b-nurture, stage: watched_video1}}
"""
QUIZ_CLUB = """key: quiz-club
name: Quiz club
topic: nurture
priority: 5
reentry: true
entry: {on: quiz_taken, where: {score: {gte: 3}, contact.plan: {ne: free}}}
exit:
  - {on: purchase_completed, as: converted}
  - {segment: high-value, as: upgraded}
stages:
  - key: joined
    emails: [{template: quiz-invite, after: 0m}, {template: video2-invite, after: 1d}]
    transitions:
      - {on: video_watched, where: {percent: {gte: 90}}, to: keen}
      - {if: {segment: video-fans}, to: keen}
  - key: keen
    emails: [{template: demo-invite, after: 1h}]
    transitions:
      - {on: quiz_taken, to: joined}
"""


# The quiz club without its segment triggers, for databases without segments.
QUIZ_CLUB_ALONE = "\n".join(line for line in QUIZ_CLUB.splitlines() if "segment" not in line)


def live(sessions, *, segments: bool = True) -> None:
    """The funnels (and segments), and two contacts of each half known beforehand,
    with a plan the quiz club reads."""
    with sessions.begin() as s:
        for prefix in "ab":
            for who, plan in ((1, "free"), (3, "pro")):
                contact, _ = contacts_svc.get_or_create(s, f"{prefix}{who}@example.com", T0)
                contacts_svc.update_attributes(contact, {"plan": plan}, T0)
    publish(sessions, ROOT / "funnels" / "b2b-nurture.yaml", T0)
    if not segments:
        publish(sessions, QUIZ_CLUB_ALONE, T0)
    else:
        for source in (SEGMENTS / "high-value.yaml", SEGMENTS / "cart-abandoners.yaml"):
            load_segment(sessions, source, T0)
        load_segment(sessions, VIDEO_FANS, T0)
        publish(sessions, ROOT / "funnels" / "cart-recovery.yaml", T0)
        publish(sessions, QUIZ_CLUB, T0)


# --- A random stream of events ----------------------------------------------------------


def _event(rng: random.Random) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(
        ["ebook_downloaded", "video_watched", "video_watched", "quiz_taken", "form_submitted",
         "add_to_cart", "purchase_completed", "page_viewed"]
    )  # fmt: skip
    properties: dict[str, Any] = {
        "ebook_downloaded": {"ebook": rng.choice(["seven-fundamentals", "other"])},
        "video_watched": {
            "video": rng.choice(["explainer-1", "deep-dive-2", "product-demo"]),
            "percent": rng.choice([30, 60, 95]),
        },
        "quiz_taken": {"score": rng.randrange(6)},
        "form_submitted": {"form": rng.choice(["contact-us", "newsletter"])},
        "add_to_cart": {"sku": "tea-42"},
        "purchase_completed": {"amount": rng.choice([100, 400, 900])},
    }.get(kind, {"path": "/pricing"})
    return kind, properties


def stream(seed: int, batches: int, size: int) -> list[tuple[datetime, list[dict[str, Any]]]]:
    """Batches of (who, type, properties, occurred_at, id), each with the time it is
    ingested: out of order within and across batches, some from the future, some
    without a time or an id, some ids sent again (in the batch or a later one)."""
    rng = random.Random(seed)
    sent: list[tuple[int, str]] = []
    out = []
    for number in range(batches):
        now = T0 + timedelta(hours=8 * (number + 1))
        items = []
        for _ in range(size):
            who = rng.randrange(PEOPLE)
            kind, properties = _event(rng)
            occurred: datetime | None = now - timedelta(minutes=rng.randrange(16 * 60))
            if rng.random() < 0.05:
                occurred = now + timedelta(hours=2)  # a skewed client clock
            elif rng.random() < 0.1:
                occurred = None
            client_id = None if rng.random() < 0.2 else f"e{number}-{len(items)}"
            if sent and rng.random() < 0.15:
                who, client_id = rng.choice(sent)  # sent again
            elif client_id is not None:
                sent.append((who, client_id))
            items.append({"who": who, "type": kind, "properties": properties,
                          "occurred_at": occurred, "client_id": client_id})  # fmt: skip
        out.append((now, items))
    return out


def _item(prefix: str, raw: dict[str, Any]) -> Item:
    return Item(
        email=f"{prefix}{raw['who']}@example.com",
        type=raw["type"],
        properties=raw["properties"],
        occurred_at=raw["occurred_at"],
        client_id=raw["client_id"],
    )


def ingest_both(sessions, batches: list[tuple[datetime, list[dict[str, Any]]]]) -> None:
    """Every batch event by event for a*, as one batch for b*; answers compared."""
    for now, raw in batches:
        one = [_item("a", r) for r in raw]
        with sessions.begin() as s:
            created = {}
            for index in processing_order(one, now):
                item = one[index]
                created[index] = ingest_event(
                    s, email=item.email, type=item.type, properties=item.properties,
                    occurred_at=item.occurred_at, now=now, client_id=item.client_id,
                ).created  # fmt: skip
        with sessions.begin() as s:
            outcomes = ingest_batch(s, [_item("b", r) for r in raw], now)
        assert [o.created for o in outcomes] == [created[i] for i in range(len(raw))]
        refresh(sessions, now)  # what the tick does for segments, for both halves alike


# --- Comparing the halves ---------------------------------------------------------------


class _Names:
    """What the ids of one half's rows name, so that the halves can be compared."""

    def __init__(self, s, prefix: str) -> None:
        contacts = s.scalars(select(Contact).where(Contact.email.startswith(prefix)))
        self.who = {c.id: c.email[len(prefix) :] for c in contacts}
        self.events = {e.id: e for e in s.scalars(select(Event)) if e.contact_id in self.who}
        rows = s.scalars(select(Enrollment))
        self.enrollments = {e.id: e for e in rows if e.contact_id in self.who}
        self.funnels = {i: key for i, key in s.execute(select(Funnel.id, Funnel.key))}
        self.segments = {i: key for i, key in s.execute(select(Segment.id, Segment.key))}

    def event(self, event_id: int | None) -> Any:
        if event_id is None:
            return None
        e = self.events[event_id]
        return (e.type, e.occurred_at, e.client_id, json.dumps(e.properties))

    def journey(self, enrollment_id: int) -> Any:
        e = self.enrollments[enrollment_id]
        return (self.who[e.contact_id], self.funnels[e.funnel_id], e.enrolled_at)

    def mine(self, s, model: Any) -> list[Any]:
        return [row for row in s.scalars(select(model)) if row.contact_id in self.who]


def snapshot(sessions, prefix: str) -> dict[str, list[Any]]:
    """Everything ingestion wrote for the contacts `prefix`*, ids replaced by what they
    name, in a canonical order."""
    with sessions() as s:
        n = _Names(s, prefix)
        return {
            "events": [(n.who[e.contact_id], n.event(e.id), e.received_at, e.source)
                       for e in n.events.values()],
            "enrollments": [(n.journey(e.id), e.status, e.stage_key, e.visit,
                             e.stage_entered_at, e.timeout_at, e.exited_at, e.exit_label,
                             n.event(e.stage_event_id)) for e in n.enrollments.values()],
            "moves": [(n.journey(m.enrollment_id), m.at, m.from_stage, m.to_stage, m.reason,
                       m.label, n.event(m.event_id)) for m in n.mine(s, StageMove)],
            "messages": [(n.journey(m.enrollment_id), m.stage_key, m.visit, m.step, m.template,
                          m.status, m.reason, m.due_at, m.created_at, n.event(m.event_id),
                          m.priority) for m in n.mine(s, Message)],
            "members": [(n.who[m.contact_id], n.segments[m.segment_id], m.since)
                        for m in n.mine(s, SegmentMember)],
            "changes": [(n.who[c.contact_id], n.segments[c.segment_id], c.at, c.change,
                         c.reason, n.event(c.event_id)) for c in n.mine(s, SegmentChange)],
            "checks": [(n.who[c.contact_id], c.due_at, c.reason, c.checked_at)
                       for c in n.mine(s, SegmentCheck)],
        }  # fmt: skip


def canonical(rows: list[Any]) -> list[Any]:
    return sorted(rows, key=repr)  # (repr: rows hold None beside values)


def assert_same(sessions) -> dict[str, list[Any]]:
    one, batched = snapshot(sessions, "a"), snapshot(sessions, "b")
    for part in one:
        assert canonical(batched[part]) == canonical(one[part]), part
    return one


# --- The tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_does_what_the_per_event_path_does_with_funnels_and_segments(sessions, seed):
    live(sessions)
    ingest_both(sessions, stream(seed, batches=5, size=30))
    done = assert_same(sessions)
    # The stream did exercise what it is meant to: entries, moves, exits, joins.
    reasons = {move[4] for move in done["moves"]}
    assert {"entry", "event", "exit"} <= reasons, reasons
    assert done["changes"] and any(m[5] == "cancelled" for m in done["messages"])


@pytest.mark.parametrize("seed", [4, 5])
def test_it_does_what_the_per_event_path_does_with_funnels_alone(sessions, seed):
    live(sessions, segments=False)
    ingest_both(sessions, stream(seed, batches=4, size=40))
    done = assert_same(sessions)
    assert {"entry", "event", "exit"} <= {move[4] for move in done["moves"]}


def test_it_applies_a_contacts_events_in_the_order_they_happened(sessions):
    live(sessions, segments=False)
    now = at("2026-03-02 12:00")
    video = Item("ada@example.com", "video_watched", {"video": "explainer-1", "percent": 80},
                 at("2026-03-02 10:05"))  # fmt: skip
    ebook = Item("ada@example.com", "ebook_downloaded", {"ebook": "seven-fundamentals"},
                 at("2026-03-02 10:00"))  # fmt: skip
    with sessions.begin() as s:
        assert [o.created for o in ingest_batch(s, [video, ebook], now)] == [True, True]
    with sessions() as s:
        enrollment = s.scalar(select(Enrollment))
        assert (enrollment.stage_key, enrollment.stage_entered_at) == (
            "watched_video1",
            at("2026-03-02 10:05"),
        )


def test_it_stores_an_id_once_within_a_batch_and_across_batches(sessions):
    live(sessions, segments=False)
    ebook = Item("ada@example.com", "ebook_downloaded", {"ebook": "seven-fundamentals"},
                 client_id="x")  # fmt: skip
    other = Item("bob@example.com", "ebook_downloaded", {"ebook": "seven-fundamentals"},
                 client_id="x")  # the same id for another contact: another event  # fmt: skip
    with sessions.begin() as s:
        first = ingest_batch(s, [ebook, ebook, other], T0)
    with sessions.begin() as s:
        again = ingest_batch(s, [other, ebook], T0 + timedelta(hours=1))
    assert [o.created for o in first] == [True, False, True]
    assert first[0].event_id == first[1].event_id != first[2].event_id
    assert [(o.event_id, o.created) for o in again] == [
        (first[2].event_id, False),
        (first[0].event_id, False),
    ]
    with sessions() as s:
        assert len(s.scalars(select(Event)).all()) == 2
        assert len(s.scalars(select(Enrollment)).all()) == 2
        assert len(s.scalars(select(StageMove)).all()) == 2


def test_it_creates_each_new_contact_once(sessions):
    items = [Item(f"  New{i % 3}@Example.COM ", "page_viewed", {}) for i in range(9)]
    with sessions.begin() as s:
        outcomes = ingest_batch(s, items, T0)
    assert all(o.created for o in outcomes)
    with sessions() as s:
        assert sorted(s.scalars(select(Contact.email))) == [
            "new0@example.com",
            "new1@example.com",
            "new2@example.com",
        ]
