"""Funnel stats query time on a year of activity: 1M events and what goes with them.

Builds a database (SQLite, and PostgreSQL too when TEST_PG_URL is set) with two
live funnels sharing N contacts over 365 days: per contact one enrollment, its
stage moves (entry, event moves, some conversions), the emails of every stage it
visited (sent, deferred then sent, suppressed, failed, cancelled), opens and
clicks (a tenth of them scanners), some unsubscribes through an email, and
`--events` events in all (what the ingest API would have stored). Rows go in with
bulk inserts. Then times `funnel_stats` over the last 30 and 90 days by day, and
the whole year by week, and prints the median of several runs in ms.

    python bench/analytics.py [--events 1000000] [--contacts 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, func, insert, select, text  # noqa: E402

from app.db import make_engine, make_session_factory  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import (  # noqa: E402
    ConsentChange,
    Contact,
    Enrollment,
    Event,
    Message,
    StageMove,
    TrackingHit,
)
from app.services.analytics import funnel_stats  # noqa: E402
from app.services.funnels import load_file, publish, save_version  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
CHUNK = 5_000  # contacts per insert batch
# The b2b-nurture path: each stage, its emails (template, delay) and the next stage.
PATH = [
    ("read_ebook", [("ebook-welcome", 0), ("video1-invite", 2 * 86400)]),
    ("watched_video1", [("quiz-invite", 3600)]),
    ("took_quiz", [("video2-invite", 3600)]),
    ("watched_video2", [("demo-invite", 86400)]),
    ("watched_demo", [("contact-invite", 3600), ("contact-reminder", 4 * 86400)]),
]
EVENT_TYPES = [
    "ebook_downloaded",
    "video_watched",
    "quiz_taken",
    "form_submitted",
    "page_viewed",
    "email_clicked",
    "email_opened",
]


@dataclass
class Rows:
    """The rows of one batch of contacts, per table."""

    tables: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, model: Any, **values: Any) -> None:
        self.tables.setdefault(model, []).append(values)

    def uniform(self, model: Any) -> list[dict[str, Any]]:
        """The rows of `model`, each with every key (a bulk insert needs one shape)."""
        rows = self.tables.get(model, [])
        keys = {key for row in rows for key in row}
        return [{key: row.get(key) for key in keys} for row in rows]


@dataclass
class Ids:
    enrollment: int = 0
    message: int = 0

    def next_enrollment(self) -> int:
        self.enrollment += 1
        return self.enrollment

    def next_message(self) -> int:
        self.message += 1
        return self.message


def funnels(engine: Engine) -> list[tuple[int, int]]:
    """Publish b2b-nurture and a copy under another key; (funnel id, version id) each."""
    sessions = make_session_factory(engine)
    source = (ROOT / "funnels" / "b2b-nurture.yaml").read_text()
    with sessions.begin() as s:
        _, first, _ = load_file(s, ROOT / "funnels" / "b2b-nurture.yaml", NOW - YEAR, None)
        funnel, second, _ = save_version(
            s, source.replace("key: b2b-nurture", "key: b2b-copy"), NOW - YEAR, templates=None
        )
        publish(s, funnel, second, NOW - YEAR)
        return [(first.funnel_id, first.id), (second.funnel_id, second.id)]


def contact_rows(rows: Rows, rng: random.Random, cid: int) -> None:
    rows.add(
        Contact,
        id=cid,
        email=f"c{cid}@bench.example.com",
        attributes={},
        status="active",
        created_at=NOW - YEAR,
        updated_at=NOW - YEAR,
    )


def journey(rows: Rows, rng: random.Random, ids: Ids, cid: int, funnel: tuple[int, int]) -> None:
    """One enrollment walking the path: moves, emails, hits, maybe a conversion."""
    eid = ids.next_enrollment()
    who = {"enrollment_id": eid, "contact_id": cid, "funnel_id": funnel[0], "version_id": funnel[1]}
    at = enrolled = NOW - YEAR + timedelta(seconds=rng.randrange(int(YEAR.total_seconds())))
    previous: str | None = None
    label: str | None = None
    for visit, (stage, emails) in enumerate(PATH, start=1):
        reason = "entry" if previous is None else "event"
        rows.add(StageMove, **who, at=at, from_stage=previous, to_stage=stage, reason=reason)
        leave = at + timedelta(hours=rng.uniform(2, 240))
        for step, (template, delay) in enumerate(emails):
            scheduled = {"stage_key": stage, "visit": visit, "step": step, "template": template}
            message_rows(rows, rng, ids, who, scheduled, at, at + timedelta(seconds=delay), leave)
        previous = stage
        if rng.random() < 0.05 and leave <= NOW:
            label = "converted"
            rows.add(StageMove, **who, at=leave, from_stage=stage, reason="exit", label=label)
            break
        if rng.random() > 0.55 or leave > NOW:
            break
        at = leave
    status = "exited" if label else "active"
    rows.add(
        Enrollment,
        id=eid,
        **{k: v for k, v in who.items() if k != "enrollment_id"},
        status=status,
        stage_key=previous,
        stage_entered_at=at,
        visit=1,
        enrolled_at=enrolled,
        exited_at=leave if label else None,
        exit_label=label,
    )


def message_rows(
    rows: Rows,
    rng: random.Random,
    ids: Ids,
    who: dict[str, int],
    scheduled: dict[str, Any],
    created: datetime,
    due: datetime,
    leave: datetime,
) -> None:
    """One email of a stage visit: cancelled, suppressed, failed, or sent (maybe deferred)."""
    mid, roll = ids.next_message(), rng.random()
    values = {"id": mid, **who, **scheduled, "created_at": created, "due_at": due, "attempts": 1}
    if due > leave or due > NOW:
        rows.add(Message, **values, status="cancelled" if due > leave else "scheduled")
    elif roll < 0.05:
        rows.add(Message, **values, status="suppressed")
    elif roll < 0.06:
        rows.add(Message, **values, status="failed", claimed_at=due)
    else:
        if roll < 0.12:  # deferred by a cap or the window, then sent
            values["due_at"] = due = due + timedelta(hours=rng.uniform(1, 20))
        rows.add(Message, **values, status="sent", sent_at=due, claimed_at=due)
        hit_rows(rows, rng, {**who, "message_id": mid}, due)


def hit_rows(rows: Rows, rng: random.Random, who: dict[str, int], sent: datetime) -> None:
    """Opens and clicks of a sent email (a tenth by scanners at delivery); rare opt-outs."""
    hit = {k: who[k] for k in ("message_id", "contact_id", "funnel_id", "version_id")}
    for kind, chance in (("open", 0.45), ("click", 0.15)):
        if rng.random() < chance:
            bot = rng.random() < 0.1
            at = sent + (timedelta(seconds=2) if bot else timedelta(hours=rng.uniform(0.1, 48)))
            reason = "within 10s of delivery" if bot else None
            rows.add(TrackingHit, **hit, kind=kind, at=at, bot=bot, reason=reason)
    if rng.random() < 0.01:
        rows.add(
            ConsentChange,
            contact_id=who["contact_id"],
            source="unsubscribe-page",
            at=sent + timedelta(hours=rng.uniform(1, 72)),
            topic=None,
            field="status",
            before="active",
            after="unsubscribed",
            message_id=who["message_id"],
        )


def event_rows(rows: Rows, rng: random.Random, cid: int, count: int) -> None:
    for _ in range(count):
        at = NOW - YEAR + timedelta(seconds=rng.randrange(int(YEAR.total_seconds())))
        rows.add(
            Event,
            contact_id=cid,
            type=rng.choice(EVENT_TYPES),
            properties={"n": rng.randrange(9)},
            occurred_at=at,
            received_at=at,
            source="api",
        )


def batches(contacts: int, events: int, pair: list[tuple[int, int]]) -> Iterator[Rows]:
    rng, ids = random.Random(7), Ids()
    per_contact, extra = divmod(events, contacts)
    for lo in range(1, contacts + 1, CHUNK):
        rows = Rows()
        for cid in range(lo, min(contacts, lo + CHUNK - 1) + 1):
            contact_rows(rows, rng, cid)
            journey(rows, rng, ids, cid, pair[cid % 2])
            event_rows(rows, rng, cid, per_contact + (1 if cid <= extra else 0))
        yield rows


ORDER = [Contact, Enrollment, StageMove, Message, TrackingHit, ConsentChange, Event]


def build(url: str, contacts: int, events: int) -> dict[str, int]:
    upgrade(url)
    engine = make_engine(url)
    pair = funnels(engine)
    for rows in batches(contacts, events, pair):
        with engine.begin() as conn:
            for model in ORDER:
                if rows.tables.get(model):
                    conn.execute(insert(model), rows.uniform(model))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # ids were given explicitly: move the sequences on
            for table in ("enrollments", "messages"):
                conn.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
        counts = {
            m.__tablename__: conn.scalar(select(func.count()).select_from(m)) or 0 for m in ORDER
        }
    # Statistics for the planner, and on PostgreSQL the visibility map that index-only
    # scans need (autovacuum keeps both up to date on a live database).
    vacuum = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(vacuum))
    engine.dispose()
    return counts


def timed(url: str, repeat: int) -> dict[str, float]:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    cases = {"30d by day": (30, "day"), "90d by day": (90, "day"), "365d by week": (365, "week")}
    results = {}
    with sessions() as s:
        funnel_stats(s, "b2b-nurture", start=NOW - timedelta(days=30), end=NOW)  # warm the caches
        for name, (days, interval) in cases.items():
            runs = []
            for _ in range(repeat):
                begun = time.perf_counter()
                stats = funnel_stats(
                    s, "b2b-nurture", start=NOW - timedelta(days=days), end=NOW, interval=interval
                )
                runs.append(time.perf_counter() - begun)
            results[name] = statistics.median(runs) * 1000
            print(
                f"  {name}: {results[name]:.0f} ms (entered {stats.totals['entered']}, "
                f"sent {stats.totals['sent']}, opens {stats.totals['opens']})",
                flush=True,
            )
    engine.dispose()
    return results


def run(label: str, url: str, args: argparse.Namespace) -> None:
    begun = time.perf_counter()
    counts = build(url, args.contacts, args.events)
    rows = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"analytics.{label}: built in {time.perf_counter() - begun:.0f}s: {rows}", flush=True)
    timed(url, args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/analytics.db", args)
    pg = os.environ.get("TEST_PG_URL")
    if pg:
        from tests.support.pg import drop_database, fresh_database

        url = fresh_database(pg, prefix="nurture_bench")
        try:
            run("postgresql", url, args)
        finally:
            drop_database(url)


if __name__ == "__main__":
    main()
