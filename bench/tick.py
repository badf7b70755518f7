"""Tick time against the enrolled population.

Builds SQLite databases (WAL, as `make run` uses) with N enrolled contacts whose
email is not yet due, plus DUE messages due now, and times `tick(now)`: claim,
consent, caps, window, render, send (to an in-memory transport, so the figure is
the engine's, not the network's) and record. Prints the median of several ticks
per population and the ratio to the smallest population: tick cost should follow
the due work, not the population.

    python bench/tick.py [--populations 10000,1000000] [--due 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import update  # noqa: E402

from app.db import make_engine, make_session_factory  # noqa: E402
from app.delivery.render import Templates  # noqa: E402
from app.delivery.transport import MemoryTransport  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Message, MessageAttempt  # noqa: E402
from app.process import tune_gc  # noqa: E402
from app.settings import EngineSettings  # noqa: E402
from app.worker import tick  # noqa: E402
from bench._population import enrolled, publish_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # a Tuesday, inside the send window
CHUNK = 20_000


def build(url: str, population: int, due: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    funnel = publish_example(engine, NOW - timedelta(days=30))
    # The first `due` contacts are due now; everyone else later.
    enrolled(engine, population, funnel, NOW, template="video1-invite", step=1,
             timeout_at=NOW + timedelta(days=13),
             due_at=lambda i: NOW if i <= due else NOW + timedelta(days=1 + i % 5))  # fmt: skip
    engine.dispose()


def one_tick(url: str, due: int) -> float:
    """Seconds for one tick that sends the `due` messages; then makes them due again."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    settings = EngineSettings(
        public_url="http://bench.example.com",
        secret_key="bench",
        mail_from="b@bench.example.com",
        templates=Templates(ROOT / "templates" / "email"),
        batch=500,
    )
    tick(
        sessions, NOW - timedelta(days=2), MemoryTransport(), settings, worker="warm-up"
    )  # caches, pages
    begun = time.perf_counter()
    report = tick(sessions, NOW, MemoryTransport(), settings, worker="bench")
    elapsed = time.perf_counter() - begun
    assert report.counts["sent"] == due, report.as_dict()
    with engine.begin() as conn:
        conn.execute(
            update(Message)
            .where(Message.contact_id <= due)
            .values(status="scheduled", due_at=NOW, sent_at=None, claimed_by=None, attempts=0)
        )
        conn.execute(MessageAttempt.__table__.delete())
    engine.dispose()
    return elapsed


def main() -> None:
    tune_gc()  # as wsgi.py does in every web and worker process
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--populations", default="10000,1000000")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    populations = [int(p) for p in args.populations.split(",")]
    results: dict[int, list[float]] = {p: [] for p in populations}
    with tempfile.TemporaryDirectory() as tmp:
        urls = {}
        for population in populations:
            urls[population] = f"sqlite:///{tmp}/tick-{population}.db"
            begun = time.perf_counter()
            build(urls[population], population, args.due)
            print(
                f"tick.built population={population} in {time.perf_counter() - begun:.1f}s",
                flush=True,
            )
        # Alternate between the databases so that machine noise falls on both alike.
        for _ in range(args.repeat):
            for population in populations:
                results[population].append(one_tick(urls[population], args.due))
    medians = {p: statistics.median(t) for p, t in results.items()}
    for population in populations:
        print(
            f"tick.population={population} due={args.due} tick_ms={medians[population] * 1000:.1f} "
            f"emails_per_s={args.due / medians[population]:.0f} (median of {args.repeat})",
            flush=True,
        )
    results = medians  # type: ignore[assignment]
    base = results[populations[0]]
    for population in populations[1:]:
        ratio = results[population] / base
        print(
            f"tick.ratio {population}/{populations[0]} = {ratio:.2f}x "
            f"(population {population / populations[0]:.0f}x larger, same {args.due} due; "
            f"target at most 2x: {'met' if ratio <= 2 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
