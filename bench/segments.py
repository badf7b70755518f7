"""Segments: ingest throughput with 10 segments live, and the cost of a 24-hour jump.

1. Events/s: the same stream of events (page views, carts, purchases, opens,
   clicks over 5,000 contacts) ingested in batches of 500 per transaction, as the
   API's batch route does, with no segment live and with 10 live (and the cart
   recovery funnel); every event brings its contact's memberships up to date.
2. The 24-hour jump: a population of contacts whose memberships are up to date,
   of which DUE added to their cart 23 hours ago; time moves 24 hours and the
   tick's `refresh` brings memberships up to date (the DUE join the cart
   abandoners and enter the recovery funnel). Timed for 10,000 and 100,000
   contacts: the cost follows the contacts due, not the population.

SQLite (WAL), as `make run` uses. Usage:

    python bench/segments.py [--events 5000] [--populations 10000,100000] [--due 1000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from app.db import make_engine, make_session_factory  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import (  # noqa: E402
    Contact,
    Event,
    Segment,
    SegmentCheck,
    SegmentMember,
    Subscription,
)
from app.services import funnels as funnels_svc  # noqa: E402
from app.services import segments as segments_svc  # noqa: E402
from app.services.funnels import live_funnels  # noqa: E402
from app.services.ingest import ingest_event  # noqa: E402
from app.services.segment_membership import refresh  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CHUNK = 20_000
BATCH = 500
# Seven more segments beside the three examples: ten of every kind of condition.
EXTRA = {
    "loyal": "{sum: purchase_completed.amount, gte: 250}",
    "frequent-buyers": "{count: purchase_completed, gte: 3, within: 30d}",
    "browsers": "{performed: page_viewed, at_least: 5, within: 7d}",
    "pricing-viewers": "{performed: page_viewed, where: {page: pricing}, within: 14d}",
    "new-contacts": "{first_seen: {within: 7d}}",
    "germans": "{contact: {country: DE}}",
    "newsletter": "{consent: {status: active, topic: newsletter}}",
}
KINDS = ("page_viewed", "page_viewed", "page_viewed", "add_to_cart", "purchase_completed",
         "email_opened", "email_clicked")  # fmt: skip


def database(path: Path, segments: bool) -> sessionmaker[Session]:
    url = f"sqlite:///{path}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    if segments:
        with sessions.begin() as s:
            ctx = segments_svc.context(s)
            for source in _sources():
                segments_svc.load_text(s, source, T0, ctx)
            funnels_svc.load_file(s, ROOT / "funnels" / "cart-recovery.yaml", T0, None)
    return sessions


def _sources() -> list[str]:
    files = [p.read_text() for p in sorted((ROOT / "segments").glob("*.yaml"))]
    return files + [f"key: {key}\nname: {key}\nmatch: {match}\n" for key, match in EXTRA.items()]


def stream(n: int, contacts: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        kind = rng.choice(KINDS)
        properties: dict[str, object] = {"page": rng.choice(["home", "pricing", "blog"])}
        if kind == "purchase_completed":
            properties = {"amount": rng.choice([20, 80, 300, 900])}
        at = T0 + timedelta(seconds=30 * i)
        events.append({"email": f"c{rng.randrange(contacts)}@bench.example.com", "type": kind,
                       "properties": properties, "at": at})  # fmt: skip
    return events


def ingest_rate(sessions: sessionmaker[Session], events: list[dict[str, object]]) -> float:
    begun = time.perf_counter()
    for lo in range(0, len(events), BATCH):
        with sessions.begin() as s:
            funnels = live_funnels(s)  # once per batch, as the API's batch route does
            for e in events[lo : lo + BATCH]:
                ingest_event(s, email=e["email"], type=e["type"], properties=e["properties"],  # type: ignore[arg-type]
                             occurred_at=e["at"], now=e["at"], funnels=funnels)  # type: ignore[arg-type]  # fmt: skip
    return len(events) / (time.perf_counter() - begun)


def populate(sessions: sessionmaker[Session], population: int, due: int) -> None:
    """`population` contacts with up-to-date memberships: the first `due` added to
    their cart 23 hours before T0 (so they come due at T0 + 1h); everyone viewed a
    page a month ago and is a newsletter reader; a tenth are high-value customers."""
    with sessions.begin() as s:
        ids = {key: sid for key, sid in s.execute(select(Segment.key, Segment.id))}
    with sessions.kw["bind"].begin() as conn:
        for lo in range(1, population + 1, CHUNK):
            chunk = range(lo, min(population, lo + CHUNK - 1) + 1)
            for table, rows in _rows(chunk, due, ids):
                conn.execute(insert(table), rows)


def _rows(chunk: range, due: int, ids: dict[str, int]) -> list[tuple[Any, list[dict[str, Any]]]]:
    cart, month = T0 - timedelta(hours=23), T0 - timedelta(days=30)
    contacts = [
        {"id": i, "email": f"c{i}@bench.example.com", "status": "active",
         "attributes": {"country": "DE" if i % 3 else "FR"}, "created_at": month,
         "updated_at": month}
        for i in chunk
    ]  # fmt: skip
    subscriptions = [
        {"contact_id": i, "topic": "newsletter", "status": "subscribed", "updated_at": month}
        for i in chunk
    ]
    events = [_event(i, "add_to_cart", cart) if i <= due else _event(i, "page_viewed", month)
              for i in chunk]  # fmt: skip
    events += [_event(i, "purchase_completed", month, amount=1500) for i in chunk if i % 10 == 0]
    checks = [
        {"contact_id": i, "due_at": cart + timedelta(hours=24) if i <= due else None,
         "reason": "time" if i <= due else None, "checked_at": T0 - timedelta(hours=1)}
        for i in chunk
    ]  # fmt: skip
    members = [_member(ids["newsletter"], i) for i in chunk]
    members += [_member(ids["germans"], i) for i in chunk if i % 3]
    members += [_member(ids[k], i) for i in chunk if i % 10 == 0 for k in ("high-value", "loyal")]
    return [(Contact, contacts), (Subscription, subscriptions), (Event, events),
            (SegmentCheck, checks), (SegmentMember, members)]  # fmt: skip


def _event(contact_id: int, kind: str, at: datetime, **properties: Any) -> dict[str, Any]:
    return {"contact_id": contact_id, "type": kind, "properties": properties,
            "occurred_at": at, "received_at": at, "source": "bench"}  # fmt: skip


def _member(segment_id: int, contact_id: int) -> dict[str, Any]:
    return {"segment_id": segment_id, "contact_id": contact_id, "since": T0 - timedelta(days=30)}


def jump(sessions: sessionmaker[Session], due: int) -> float:
    """Seconds to bring memberships up to date 24 hours on."""
    begun = time.perf_counter()
    done = refresh(sessions, T0 + timedelta(hours=24), budget=10 * due)
    seconds = time.perf_counter() - begun
    with sessions() as s:
        query = select(func.count()).select_from(SegmentMember).join(Segment)
        joined = s.scalar(query.where(Segment.key == "cart-abandoners"))
    assert done == due and joined == due, (done, joined)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--populations", default="10000,100000")
    parser.add_argument("--due", type=int, default=1000)
    args = parser.parse_args()
    events = stream(args.events, 5000)
    with tempfile.TemporaryDirectory() as tmp:
        plain = ingest_rate(database(Path(tmp) / "plain.db", False), events)
        live = ingest_rate(database(Path(tmp) / "live.db", True), events)
        print(f"segments.ingest events={args.events} no_segments={plain:.0f}/s "
              f"ten_segments={live:.0f}/s ({live / plain:.2f}x)", flush=True)  # fmt: skip
        # A small run first, so neither measured run pays for warming up (statements
        # compiled and cached, definitions parsed).
        warm = database(Path(tmp) / "warm.db", True)
        populate(warm, args.due, args.due // 10)
        jump(warm, args.due // 10)
        results = {}
        for population in [int(p) for p in args.populations.split(",")]:
            sessions = database(Path(tmp) / f"jump-{population}.db", True)
            begun = time.perf_counter()
            populate(sessions, population, args.due)
            built = time.perf_counter() - begun
            results[population] = jump(sessions, args.due)
            print(f"segments.jump population={population} due={args.due} "
                  f"refresh_ms={results[population] * 1000:.0f} "
                  f"contacts_per_s={args.due / results[population]:.0f} (built in {built:.1f}s)",
                  flush=True)  # fmt: skip
    small, *larger = results
    for population in larger:
        print(f"segments.ratio {population}/{small} = {results[population] / results[small]:.2f}x "
              f"(population {population / small:.0f}x larger, same {args.due} due)")  # fmt: skip


if __name__ == "__main__":
    main()
