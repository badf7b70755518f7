"""Emails/s with 1, 2 and 4 worker processes on PostgreSQL, to a local SMTP sink.

Each run gets a fresh database holding N due messages (bulk-inserted), warm
worker processes, and one tick at a fixed `now`; the figure is N / wall time until
every message is recorded sent. The sink (aiosmtpd in a process of its own) fed by
bare smtplib loops, as many as a worker's SMTP sessions, is printed as the ceiling.

Needs TEST_PG_URL (`bash scripts/pg.sh start; export TEST_PG_URL=$(bash scripts/pg.sh url)`),
or run it through `make bench`.

    python bench/workers.py [--messages 3000] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Message  # noqa: E402
from bench._population import all_due  # noqa: E402
from bench._sink import SinkProcess  # noqa: E402
from bench.send import CONNECTIONS, ceiling  # noqa: E402
from tests.support.pg import drop_database, fresh_database, pg_url  # noqa: E402
from tests.support.workers import WorkerPool, worker_env  # noqa: E402

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def env_for(url: str, sink: SinkProcess) -> dict[str, str]:
    return worker_env(url, sink, WORKER_BATCH="100", LOG_LEVEL="WARNING")


def run_workers(server: str, sink: SinkProcess, n: int, workers: int) -> float:
    url = fresh_database(server)
    try:
        upgrade(url)
        before = sink.count()
        with tempfile.TemporaryDirectory() as tmp:
            with WorkerPool(Path(tmp), env_for(url, sink), workers) as pool:
                pool.step(NOW - timedelta(days=1))  # processes up and warm, nothing due yet
                all_due(url, n, NOW)
                begun = time.perf_counter()
                pool.step(NOW)
                elapsed = time.perf_counter() - begun
            engine = make_engine(url)
            with engine.connect() as conn:
                sent = conn.scalar(
                    select(func.count()).select_from(Message).where(Message.status == "sent")
                )
            engine.dispose()
            assert sent == n == sink.count() - before, (sent, n)
        return n / elapsed
    finally:
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    server = pg_url()
    if server is None:
        sys.exit("bench/workers.py needs TEST_PG_URL (PostgreSQL); see its docstring")
    with SinkProcess() as sink:
        top = ceiling(sink, args.messages, CONNECTIONS)
        print(
            f"workers.sink_ceiling connections={CONNECTIONS} emails_per_s={top:.0f} "
            "(bare smtplib loops)",
            flush=True,
        )
        rates = {}
        for count in [int(w) for w in args.workers.split(",")]:
            rates[count] = run_workers(server, sink, args.messages, count)
            print(
                f"workers.pg workers={count} emails={args.messages} "
                f"emails_per_s={rates[count]:.0f} "
                f"ratio_to_1={rates[count] / rates[min(rates)]:.2f} "
                f"of_ceiling={rates[count] / top:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
