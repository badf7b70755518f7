"""The worker process: APScheduler calls `tick` with the clock; nothing else does.

On SQLite only one worker may run (SQLite has one writer and no row locks): a
second one is refused with a clear message, through an exclusive lock file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from app.clock import utcnow
from app.db import is_sqlite
from app.delivery.transport import SmtpTransport
from app.models import WorkerHeartbeat
from app.settings import EngineSettings
from app.worker import TickReport, tick

log = logging.getLogger("nurture.worker")


class SecondWorker(RuntimeError):
    pass


def _sqlite_lock(url: str) -> IO[str] | None:
    if not is_sqlite(url) or ":memory:" in url or url == "sqlite://":
        return None
    path = Path(url.split("///", 1)[1] + ".worker.lock")
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SecondWorker(
            "another worker is already running on this SQLite database. SQLite allows one "
            "worker; to run several, use PostgreSQL (set DATABASE_URL=postgresql://...)."
        ) from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _beat(
    sessions: sessionmaker[Session],
    worker: str,
    started: datetime,
    now: datetime,
    report: TickReport | None,
    ms: int | None,
) -> None:
    with sessions.begin() as s:
        row = s.get(WorkerHeartbeat, worker)
        if row is None:
            row = WorkerHeartbeat(
                worker_id=worker, hostname=socket.gethostname(), pid=os.getpid(), started_at=started
            )
            s.add(row)
        row.last_tick_at, row.last_tick_ms = now, ms
        row.last_report = report.as_dict() if report else None


def run_once(app: Flask, now: datetime, worker: str | None = None, stop: Any = None) -> TickReport:
    settings = EngineSettings.from_config(app.config)
    assert settings.smtp is not None
    sessions = app.extensions["nurture.sessions"]
    worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    lock = _sqlite_lock(app.config["DATABASE_URL"])
    try:
        return tick(sessions, now, SmtpTransport(settings.smtp), settings, worker=worker, stop=stop)
    finally:
        if lock:
            lock.close()


def run_forever(app: Flask) -> None:
    """Tick every WORKER_INTERVAL seconds until SIGTERM/SIGINT; the current batch is
    finished (and its outcomes recorded) before the process exits."""
    lock = _sqlite_lock(app.config["DATABASE_URL"])
    settings = EngineSettings.from_config(app.config)
    assert settings.smtp is not None
    sessions = app.extensions["nurture.sessions"]
    worker = f"{socket.gethostname()}:{os.getpid()}"
    started, stop = utcnow(), threading.Event()
    _beat(sessions, worker, started, started, None, None)

    ticking = threading.Lock()

    def one_tick() -> None:
        with ticking:
            if not stop.is_set():
                _tick_and_beat()

    def _tick_and_beat() -> None:
        begun = utcnow()
        try:
            report = tick(
                sessions, begun, SmtpTransport(settings.smtp), settings, worker=worker, stop=stop
            )  # type: ignore[arg-type]
        except Exception:
            log.exception("tick failed; the next one retries")
            return
        ms = int((utcnow() - begun).total_seconds() * 1000)
        _beat(sessions, worker, started, begun, report, ms)
        if report.counts:
            log.info("tick %s in %d ms", report.as_dict(), ms)

    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        one_tick,
        "interval",
        seconds=app.config["WORKER_INTERVAL"],
        next_run_time=started,
        max_instances=1,
        coalesce=True,
        id="tick",
    )

    def shutdown(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current batch, then stopping", signum)
        stop.set()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("worker %s started, ticking every %ss", worker, app.config["WORKER_INTERVAL"])
    try:
        scheduler.start()
    finally:
        with ticking:  # the tick in progress finishes its batch and records it first
            pass
        # A clean stop removes this worker from /healthz; a crashed one stays, with
        # its last tick getting older, which is what an operator should see.
        with sessions.begin() as s:
            s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker))
        if lock:
            lock.close()
        log.info("worker %s stopped", worker)
