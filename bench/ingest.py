"""Ingest throughput, end to end: the batch API on SQLite and PostgreSQL, and the CSV import.

1. `POST /api/v1/events/batch` with batches of 1,000 events against the real app
   served by gunicorn on loopback, with 20 funnels live (variants of
   funnels/b2b-nurture.yaml with their own keys, ebooks, videos and forms: every
   batch enrolls contacts, moves them on and converts some), on SQLite (WAL) and on
   PostgreSQL (a fresh database on the server of TEST_PG_URL, skipped without it).
   Prints events/s, the p50 and p99 latency of a batch, and the ratio to the target
   (5,000 events/s on PostgreSQL, 2,000 on SQLite), one line per figure. SQLite has
   one writer, so one gunicorn worker and one client; PostgreSQL, the scale-out
   setup, two workers and two clients posting at once (a worker per core here).
2. `flask contacts import` of a generated CSV, then the same file again (a re-run
   must be safe, and should be quick): rows/s (SQLite).

Everything lives in a temporary directory (and database), removed on the way out,
whatever happens. Usage:
`python bench/ingest.py [--seconds S] [--batches N] [--rows R] [--only sqlite|postgresql]`.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 1000
FUNNELS = 20
CONTACTS = 5_000  # contacts sending at once: each comes back every 5 batches, one step on
WARMUP = 2  # batches per client not counted (first requests import and fill caches)
TARGETS = {"sqlite": 2_000, "postgresql": 5_000}  # events/s
# A contact's events, in the order it sends them (each starts at its own offset).
STEPS = ("ebook", "page", "video1", "quiz", "page", "video2", "form", "page")


@dataclass(frozen=True)
class Setup:
    """How the app is served and driven for one database."""

    label: str
    url: str
    workers: int  # gunicorn worker processes
    clients: int  # connections posting batches at once


def flask(env: dict[str, str], *args: str) -> str:
    """Run a `flask` command of the app; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def gunicorn(env: dict[str, str], workers: int) -> Iterator[int]:
    """gunicorn serving wsgi:app on a free loopback port; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers)]
    server = subprocess.Popen([*command, "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=env)
    try:
        wait_until_up(port, server)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until_up(port: int, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /healthz in time")


# --- Funnels and events ---------------------------------------------------------------


def write_funnels(directory: Path) -> list[Path]:
    """20 variants of the example funnel. Variant i enrolls on ebook-{i % 10}, moves on
    explainer-{i % 10} and converts on contact-{i % 10}: each download enrolls in two
    funnels, and every event of those types is matched against all twenty."""
    source = (ROOT / "funnels" / "b2b-nurture.yaml").read_text()
    paths = []
    for i in range(FUNNELS):
        text = (
            source.replace("key: b2b-nurture", f"key: bench-nurture-{i:02d}")
            .replace("seven-fundamentals", f"ebook-{i % 10}")
            .replace("explainer-1", f"explainer-{i % 10}")
            .replace("contact-us", f"contact-{i % 10}")
        )
        path = directory / f"bench-nurture-{i:02d}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def event_of(step: str, contact: int) -> dict[str, object]:
    """The event a contact sends at `step` of its sequence."""
    mine = contact % 10  # its ebook, video and form: those of two of the funnels
    if step == "ebook":
        return {"type": "ebook_downloaded", "properties": {"ebook": f"ebook-{mine}"}}
    if step == "video1":
        return {
            "type": "video_watched",
            "properties": {"video": f"explainer-{mine}", "percent": 70},
        }
    if step == "video2":
        return {"type": "video_watched", "properties": {"video": "deep-dive-2", "percent": 90}}
    if step == "quiz":
        return {"type": "quiz_taken", "properties": {"score": contact % 7}}
    if step == "form":
        return {"type": "form_submitted", "properties": {"form": f"contact-{mine}"}}
    return {"type": "page_viewed", "properties": {"path": f"/pricing/{contact % 13}"}}


def make_batch(number: int) -> bytes:
    """1,000 events from 1,000 contacts. Every 5 batches each of the CONTACTS takes
    one step of its sequence (download, page view, video, quiz, page view, video,
    form, page view), each from its own offset; after the last step a new contact
    takes its place. So every batch is alike: a download from 1 contact in 8 (two
    entries each), video and quiz moves, form conversions, and 3 in 8 page views
    that no funnel listens to."""
    events = []
    for i in range(BATCH):
        n = number * BATCH + i
        contact = (n * 7919) % CONTACTS
        position = n // CONTACTS + contact
        email = f"reader{contact}-{position // len(STEPS)}@example.com"
        step = STEPS[position % len(STEPS)]
        events.append({"email": email, "id": f"bench-{n}", **event_of(step, contact)})
    return json.dumps({"events": events}).encode()


# --- Posting --------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: int = 0
    latencies: list[float] = field(default_factory=list)
    error: str | None = None


def post_batches(port: int, key: str, bodies: list[bytes], deadline: float, tally: Tally) -> None:
    """One client: post these batches one after another, until `deadline`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in bodies:
        sent = time.perf_counter()
        connection.request("POST", "/api/v1/events/batch", body=body, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 202:
            tally.error = f"HTTP {response.status}: {str(answer)[:500]}"
            return
        tally.latencies.append(time.perf_counter() - sent)
        tally.accepted += answer["accepted"]
        if time.perf_counter() >= deadline:
            return


def clients(port: int, key: str, shares: list[list[bytes]], deadline: float) -> Tally:
    """One client per share of the batches, all at once; their totals."""
    tallies = [Tally() for _ in shares]
    threads = [
        threading.Thread(target=post_batches, args=(port, key, share, deadline, tally))
        for share, tally in zip(shares, tallies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Tally()
    for tally in tallies:
        if tally.error:
            raise SystemExit(f"a batch was refused: {tally.error}")
        total.accepted += tally.accepted
        total.latencies.extend(tally.latencies)
    return total


def drive(port: int, key: str, setup: Setup, seconds: float, most: int) -> tuple[Tally, float]:
    """Warm up (not counted), then post for `seconds`; (totals, wall time measured).
    The bodies are built beforehand, so the clients spend no time on them."""
    bodies = [make_batch(number) for number in range(most)]
    n, warm = setup.clients, setup.clients * WARMUP
    clients(port, key, [bodies[c:warm:n] for c in range(n)], deadline=float("inf"))
    started = time.perf_counter()
    total = clients(port, key, [bodies[warm + c :: n] for c in range(n)], started + seconds)
    return total, time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def moves(url: str) -> dict[str, int]:
    """Stage moves by reason: proof that events entered, moved and exited contacts."""
    from sqlalchemy import func, select

    from app.db import make_engine
    from app.models import StageMove

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = select(StageMove.reason, func.count()).group_by(StageMove.reason)
            return {reason: count for reason, count in connection.execute(query)}
    finally:
        engine.dispose()


def bench_events(env: dict[str, str], setup: Setup, directory: Path, options: Any) -> None:
    env = {**env, "DATABASE_URL": setup.url}
    flask(env, "db", "upgrade")
    flask(env, "funnels", "load", *map(str, write_funnels(directory)))
    key = flask(env, "apikeys", "create", "bench").strip()
    with gunicorn(env, setup.workers) as port:
        total, wall = drive(port, key, setup, options.seconds, options.batches)
    label, target = setup.label, TARGETS[setup.label]
    rate = total.accepted / wall
    p50, p99 = (percentile(total.latencies, p) * 1000 for p in (50, 99))
    done = moves(setup.url)
    print(
        f"{label}: {len(total.latencies)} batches of {BATCH:,} ({total.accepted:,} events "
        f"accepted) in {wall:.1f}s; {FUNNELS} funnels live; gunicorn {setup.workers} "
        f"worker(s), {setup.clients} client(s); after {WARMUP * setup.clients} warm-up batches"
    )
    print(f"  {label} events/s: {rate:,.0f}")
    print(f"  {label} batch latency p50: {p50:,.0f} ms")
    print(f"  {label} batch latency p99: {p99:,.0f} ms")
    print(f"  {label} ratio to the target of {target:,} events/s: {rate / target:.2f}x")
    print(
        f"  {label} funnel work: {done.get('entry', 0):,} entries, {done.get('event', 0):,} "
        f"stage moves, {done.get('exit', 0):,} exits"
    )


@contextmanager
def postgresql_database() -> Iterator[str | None]:
    """A fresh database on the TEST_PG_URL server, dropped afterwards; None without one."""
    from tests.support.pg import drop_database, fresh_database, pg_url

    server = pg_url()
    if server is None:
        yield None
        return
    url = fresh_database(server, prefix="nurture_bench")
    try:
        yield url
    finally:
        drop_database(url)


def write_csv(path: Path, rows: int) -> None:
    zones = ["Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo", ""]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "last_name", "timezone", "locale", "plan"])
        for i in range(rows):
            writer.writerow(
                [
                    f"lead{i}@example.com",
                    f"First{i}",
                    f"Last{i}",
                    zones[i % 5],
                    "en-GB" if i % 3 else "",
                    "trial",
                ]
            )


def bench_import(env: dict[str, str], directory: Path, rows: int) -> None:
    path = directory / "contacts.csv"
    write_csv(path, rows)
    env = {**env, "DATABASE_URL": f"sqlite:///{directory}/import.db"}
    flask(env, "db", "upgrade")
    for label in ("first run", "second run (same file)"):
        started = time.perf_counter()
        output = flask(
            env, "contacts", "import", str(path), "--topic", "nurture", "--consent-source", "bench"
        )
        elapsed = time.perf_counter() - started
        summary = output.splitlines()[0] if output else ""
        print(
            f"flask contacts import, {rows:,} rows, --topic nurture, {label}: {elapsed:.1f}s, "
            f"{rows / elapsed:,.0f} rows/s (process start included)"
        )
        print(f"  {summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=15, help="how long to post, per database (default 15)"
    )
    parser.add_argument(
        "--batches", type=int, default=200, help="at most this many batches (default 200)"
    )
    parser.add_argument("--rows", type=int, default=50_000, help="rows in the CSV (default 50,000)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: per database)")
    parser.add_argument("--clients", type=int, help="clients at once (default: per database)")
    options = parser.parse_args()
    # Other work on the machine takes its share of the cores: say how busy it was.
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, postgresql_database() as pg:
        env = {
            **os.environ,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "WARNING",
            "PUBLIC_URL": "http://127.0.0.1",
            "DOUBLE_OPT_IN_TOPICS": "",
        }
        setups = [Setup("sqlite", f"sqlite:///{tmp}/nurture.db", 1, 1)]
        if pg is not None:
            setups.append(Setup("postgresql", pg, 2, 2))
        else:
            print("postgresql: skipped (TEST_PG_URL is not set; `make bench` sets it)")
        for setup in setups:
            if options.only in (None, setup.label):
                workers = options.workers or setup.workers
                setup = Setup(setup.label, setup.url, workers, options.clients or setup.clients)
                bench_events(env, setup, Path(tmp), options)
        if options.only is None:
            bench_import(env, Path(tmp), options.rows)


if __name__ == "__main__":
    main()
