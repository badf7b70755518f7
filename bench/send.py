"""Send throughput of one worker, to an aiosmtpd sink in a process of its own.

The figure is the worker's whole job per email: claim, consent, caps and window
checks, render, compose (signed links, tracking), SMTP over one reused connection,
and the recorded outcome. The database holds N due messages (bulk-inserted); one
warm-up tick runs first so that caches and pages are warm, then one timed tick sends
them all. The ceiling is the same sink fed by a bare smtplib loop with one prebuilt
message: the ratio is what the engine costs on top of SMTP itself.

    python bench/send.py [--messages 5000] [--databases sqlite,postgresql]

PostgreSQL needs TEST_PG_URL (`make bench` starts a throwaway server).
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app.db import make_engine, make_session_factory  # noqa: E402
from app.delivery.compose import compose  # noqa: E402
from app.delivery.render import Templates, sample_context  # noqa: E402
from app.delivery.transport import SmtpSettings, SmtpTransport  # noqa: E402
from app.engine.caps import parse_caps  # noqa: E402
from app.models import Message  # noqa: E402
from app.process import tune_gc  # noqa: E402
from app.settings import EngineSettings  # noqa: E402
from app.worker import tick  # noqa: E402
from bench._population import all_due  # noqa: E402
from bench._sink import SinkProcess  # noqa: E402
from tests.support.pg import drop_database, fresh_database, pg_url  # noqa: E402

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # a Tuesday, inside the send window
TEMPLATE = "ebook-welcome"
CONNECTIONS = 4  # the SMTP_CONNECTIONS default


def settings(sink: SinkProcess) -> EngineSettings:
    """The defaults `make run` uses (batch 500, global caps 1/1d,3/7d)."""
    return EngineSettings(
        public_url="http://bench.example.com",
        secret_key="bench-secret",
        mail_from="Nurture <hello@bench.example.com>",
        templates=Templates(ROOT / "templates" / "email"),
        global_caps=parse_caps("1/1d,3/7d"),
        batch=500,
        smtp=SmtpSettings(sink.host, sink.port, connections=CONNECTIONS),
    )


def ceiling(sink: SinkProcess, n: int, connections: int) -> float:
    """Emails/s of bare smtplib loops (one per connection, in threads, as the worker
    runs its sessions) sending one real-sized prebuilt message."""
    rendered = Templates(ROOT / "templates" / "email").render(TEMPLATE, sample_context())
    raw = compose(
        rendered,
        to="c@bench.example.com",
        mail_from="hello@bench.example.com",
        message_id="<ceiling@bench.example.com>",
        unsubscribe_url="http://bench.example.com/u/x",
        now=NOW,
    ).raw

    def loop(count: int) -> None:
        with smtplib.SMTP(sink.host, sink.port) as conn:
            for _ in range(count):
                conn.sendmail("hello@bench.example.com", ["c@bench.example.com"], raw)

    before = sink.count()
    begun = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(loop, [n // connections] * connections))
    elapsed = time.perf_counter() - begun
    sent = sink.count() - before
    assert sent == n // connections * connections
    return sent / elapsed


def engine_rate(url: str, sink: SinkProcess, n: int) -> tuple[float, float]:
    """Emails/s of one timed tick that sends `n` due messages through the sink, and the
    worker's CPU time per email in ms (this process's, so the sink's is not in it;
    PostgreSQL's is not either)."""
    all_due(url, n, NOW)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    config = settings(sink)
    tick(sessions, NOW - timedelta(days=2), SmtpTransport(config.smtp), config, worker="warm")
    before = sink.count()
    begun, cpu = time.perf_counter(), time.process_time()
    report = tick(sessions, NOW, SmtpTransport(config.smtp), config, worker="bench")
    elapsed, cpu = time.perf_counter() - begun, time.process_time() - cpu
    with engine.connect() as conn:
        sent = conn.scalar(select(func.count()).where(Message.status == "sent"))
    engine.dispose()
    assert report.counts["sent"] == sent == n == sink.count() - before, report.as_dict()
    return n / elapsed, cpu / n * 1000


def main() -> None:
    tune_gc()  # as wsgi.py does in every web and worker process
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    n = args.messages
    with SinkProcess() as sink, tempfile.TemporaryDirectory() as tmp:
        single = ceiling(sink, n, 1)
        print(f"send.sink_ceiling connections=1 emails_per_s={single:.0f} (bare smtplib loop)")
        top = ceiling(sink, n, CONNECTIONS)
        print(
            f"send.sink_ceiling connections={CONNECTIONS} emails_per_s={top:.0f} "
            "(bare smtplib loops, as many as the worker's SMTP sessions)",
            flush=True,
        )
        for database in args.databases.split(","):
            if database == "sqlite":
                rate, cpu = engine_rate(f"sqlite:///{tmp}/send.db", sink, n)
            elif (server := pg_url()) is not None:
                url = fresh_database(server)
                try:
                    rate, cpu = engine_rate(url, sink, n)
                finally:
                    drop_database(url)
            else:
                print("send.postgresql skipped: TEST_PG_URL is not set", flush=True)
                continue
            print(
                f"send.{database} workers=1 connections={CONNECTIONS} emails={n} "
                f"emails_per_s={rate:.0f} worker_cpu_ms_per_email={cpu:.2f} "
                f"of_ceiling={rate / top:.2f} target=1000 ({'met' if rate >= 1000 else 'NOT met'})",
                flush=True,
            )


if __name__ == "__main__":
    main()
