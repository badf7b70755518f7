"""The worker's peak memory while it sends 100,000 emails.

A SQLite database (WAL, as `make run` uses) holds N contacts, each with one email due
(bulk-inserted); the real `flask worker --once --now ...` process sends them all to an
aiosmtpd sink in a process of its own. Its peak RSS comes from the kernel (wait4's
ru_maxrss, which covers the whole life of the process). As a baseline, the same
command against 1,000 due emails: memory should not grow with the work done.

    python bench/memory.py [--messages 100000] [--baseline 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app.db import make_engine  # noqa: E402
from app.models import Message  # noqa: E402
from bench._population import all_due  # noqa: E402
from bench._sink import SinkProcess  # noqa: E402
from tests.support.workers import worker_env  # noqa: E402

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # a Tuesday, inside the send window
LIMIT_MB = 300


def run_worker(url: str, sink: SinkProcess, n: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one `flask worker --once` that sends `n` emails."""
    env = worker_env(url, sink, GLOBAL_CAPS="1/1d,3/7d", LOG_LEVEL="WARNING")
    before = sink.count()
    begun = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", "--once", "--now", NOW.isoformat()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - begun
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, f"the worker exited with {proc.returncode}"
    engine = make_engine(url)
    with engine.connect() as conn:
        sent = conn.scalar(select(func.count()).where(Message.status == "sent"))
    engine.dispose()
    assert sent == n == sink.count() - before, (sent, n)
    return usage.ru_maxrss / 1024, elapsed  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1000)
    args = parser.parse_args()
    with SinkProcess() as sink, tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for n in (args.baseline, args.messages):
            url = f"sqlite:///{tmp}/memory-{n}.db"
            all_due(url, n, NOW)
            peaks[n], elapsed = run_worker(url, sink, n)
            print(
                f"memory.worker emails={n} peak_rss_mb={peaks[n]:.0f} seconds={elapsed:.1f} "
                f"emails_per_s={n / elapsed:.0f} (flask worker --once, process start included)",
                flush=True,
            )
    big = peaks[args.messages]
    print(
        f"memory.ratio {args.messages}/{args.baseline} emails = "
        f"{big / peaks[args.baseline]:.2f}x peak RSS; target under {LIMIT_MB} MB: "
        f"{'met' if big < LIMIT_MB else 'NOT met'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
