"""Worker processes as operators run them: one per SQLite database, graceful stop on
SIGTERM, visible in /healthz while they run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from app.clock import utcnow
from tests.conftest import make_test_app
from tests.helpers import ROOT, event, messages, publish, subscribe
from tests.support.workers import worker_env
from tests.test_engine_caps import WELCOME

FLASK = str(Path(sys.executable).parent / "flask")


def env_for(db_url: str, sink=None) -> dict[str, str]:
    return worker_env(db_url, sink, WORKER_INTERVAL="1")


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_it_refuses_a_second_worker_on_sqlite(sqlite_url):
    first = subprocess.Popen(
        [FLASK, "worker"],
        cwd=ROOT,
        env=env_for(sqlite_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        app = make_test_app(sqlite_url)
        wait_until(lambda: app.test_client().get("/healthz").json["workers"])
        second = subprocess.run(
            [FLASK, "worker", "--once"],
            cwd=ROOT,
            env=env_for(sqlite_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "another worker is already running on this SQLite database" in second.stderr
        assert "PostgreSQL" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)


def test_it_sends_then_stops_cleanly_on_sigterm(db_url, sessions, smtp_sink):
    now = utcnow()
    # A funnel without a send window: this test runs on the real clock, at any hour.
    publish(sessions, WELCOME, now)
    subscribe(sessions, "ada@example.com", now)
    event(sessions, "ada@example.com", "signed_up", now)
    worker = subprocess.Popen(
        [FLASK, "worker"],
        cwd=ROOT,
        env=env_for(db_url, smtp_sink),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    app = make_test_app(db_url)
    try:
        wait_until(lambda: len(smtp_sink.messages) == 1)
        wait_until(lambda: app.test_client().get("/healthz").json["workers"][0]["last_tick_at"])
        [beat] = app.test_client().get("/healthz").json["workers"]
        assert beat["pid"] == worker.pid
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert app.test_client().get("/healthz").json["workers"] == []
    assert "sending" not in {m.status for m in messages(sessions)}
