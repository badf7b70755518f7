"""Ingest throughput, end to end, on SQLite.

1. `POST /api/v1/events/batch` with batches of 500 events against the real app served
   by gunicorn on loopback (a fresh database, the six-step funnel live, an API key
   made by the CLI): events/s and the p50/p99 latency of a batch.
2. `flask contacts import` of a generated 100,000-row CSV, then the same file again
   (a re-run must be safe, and should be quick): rows/s.

Everything lives in a temporary directory and the server is stopped on the way out,
whatever happens. Usage: `python bench/ingest.py [--seconds S] [--batches N] [--rows R]`.
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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500
CONTACTS = 20_000  # distinct addresses the events are spread over


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


def make_batch(number: int) -> bytes:
    """500 events: a fifth download the eBook (enrolling), two fifths watch video 1
    (moving those enrolled on), the rest are page views no funnel listens to."""
    events = []
    for i in range(BATCH):
        n = number * BATCH + i
        email = f"reader{(n * 7919) % CONTACTS}@example.com"
        kind = n % 5
        if kind == 0:
            event = {"type": "ebook_downloaded", "properties": {"ebook": "seven-fundamentals"}}
        elif kind in (1, 2):
            event = {
                "type": "video_watched",
                "properties": {"video": "explainer-1", "percent": 60 + kind},
            }
        else:
            event = {"type": "page_viewed", "properties": {"path": f"/pricing/{n % 13}"}}
        events.append({"email": email, "id": f"bench-{n}", **event})
    return json.dumps({"events": events}).encode()


def post_batches(port: int, key: str, seconds: float, most: int) -> tuple[int, list[float], float]:
    """Post batches one after another for `seconds` (at most `most` batches);
    (events accepted, latency of each batch, wall time)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    accepted, latencies, started = 0, [], time.perf_counter()
    for number in range(most):
        body = make_batch(number)  # built before the clock starts for this batch
        sent = time.perf_counter()
        connection.request("POST", "/api/v1/events/batch", body=body, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        latencies.append(time.perf_counter() - sent)
        if response.status != 202:
            raise SystemExit(f"batch {number}: HTTP {response.status}: {answer}")
        accepted += answer["accepted"]
        if time.perf_counter() - started >= seconds:
            break
    return accepted, latencies, time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_events(env: dict[str, str], seconds: float, most: int) -> None:
    key = flask(env, "apikeys", "create", "bench").strip()
    with gunicorn(env, workers=1) as port:
        accepted, latencies, wall = post_batches(port, key, seconds, most)
    sent = len(latencies) * BATCH
    print(
        f"POST /events/batch, {BATCH} per batch, gunicorn (1 worker) on loopback, SQLite: "
        f"{len(latencies)} batches, {accepted:,}/{sent:,} events accepted in {wall:.1f}s"
    )
    p50, p99 = (percentile(latencies, p) * 1000 for p in (50, 99))
    print(f"  {accepted / wall:,.0f} events/s; batch latency p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")


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
        "--seconds", type=float, default=30, help="how long to post batches (default 30)"
    )
    parser.add_argument(
        "--batches", type=int, default=100, help="at most this many batches (default 100)"
    )
    parser.add_argument(
        "--rows", type=int, default=100_000, help="rows in the CSV (default 100,000)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/nurture.db",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "WARNING",
            "PUBLIC_URL": "http://127.0.0.1",
            "DOUBLE_OPT_IN_TOPICS": "",
        }
        flask(env, "db", "upgrade")
        flask(env, "funnels", "load", str(ROOT / "funnels" / "b2b-nurture.yaml"))
        bench_events(env, options.seconds, options.batches)
        bench_import(env, Path(tmp), options.rows)


if __name__ == "__main__":
    main()
