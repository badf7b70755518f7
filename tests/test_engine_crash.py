"""Rule 4, never twice: a worker process killed between the SMTP exchange and its
commit leaves nothing that is sent again (the message ends `unknown`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from tests.conftest import at
from tests.helpers import ROOT, event, messages, publish, run, subscribe
from tests.support.workers import worker_env

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
READERS = [f"reader{i}@example.com" for i in range(3)]


def crash_env(db_url: str, sink) -> dict[str, str]:
    # One SMTP session: the kill then lands while exactly one email awaits its "250".
    return worker_env(db_url, sink, SMTP_TIMEOUT="60", SMTP_CONNECTIONS="1")


def test_it_never_resends_after_the_worker_is_killed_mid_send(
    db_url, sessions, settings, smtp_sink
):
    start = at("2026-03-02 10:00")
    publish(sessions, FUNNEL, start)
    for reader in READERS:
        subscribe(sessions, reader, start, timezone="Europe/London")
        event(sessions, reader, "ebook_downloaded", start, ebook="seven-fundamentals")

    smtp_sink.hold_after_accept()
    flask = Path(sys.executable).parent / "flask"
    worker = subprocess.Popen(
        [str(flask), "worker", "--once", "--now", start.isoformat()],
        cwd=ROOT,
        env=crash_env(db_url, smtp_sink),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        smtp_sink.wait_for(1, timeout=60)  # the server has the first email; the worker awaits "250"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    smtp_sink.hold_after_accept(False)
    assert worker.returncode == -signal.SIGKILL
    claimed = [m for m in messages(sessions) if m.status == "sending"]
    assert len(claimed) == 3  # the whole batch was claimed before sending began

    # Before the claim expires nothing is touched; after it, the policy settles them.
    run(sessions, settings, start + timedelta(minutes=5), sink=smtp_sink)
    assert [m.status for m in messages(sessions) if m.template == "ebook-welcome"] == [
        "sending"
    ] * 3
    report = run(sessions, settings, start + timedelta(minutes=11), sink=smtp_sink)
    assert report.counts["recovered"] == 3
    now = start + timedelta(minutes=11)
    while now < start + timedelta(days=20):
        now += timedelta(hours=6)
        run(sessions, settings, now, sink=smtp_sink)

    ids = Counter(r.message["Message-ID"] for r in smtp_sink.messages)
    assert ids and max(ids.values()) == 1  # no message went out twice
    welcomes = [m for m in messages(sessions) if m.template == "ebook-welcome"]
    assert {m.status for m in welcomes} == {"unknown"}
    assert sum(1 for r in smtp_sink.messages if "Seven Fundamentals" in r.message["Subject"]) == 1
    # The later steps of the journey still go out, once each.
    invites = [m for m in messages(sessions) if m.template == "video1-invite"]
    assert {m.status for m in invites} == {"sent"}
