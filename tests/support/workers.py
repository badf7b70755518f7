"""Start, step and kill worker processes that share a simulated clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


class WorkerPool:
    def __init__(self, control: Path, env: dict[str, str], count: int) -> None:
        self.control, self.env = control, env
        self.names = [f"w{i}" for i in range(count)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.clock = ""

    def start(self, name: str) -> None:
        (self.control / f"{name}.done").unlink(missing_ok=True)
        log = (self.control / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker_proc", str(self.control), name],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> WorkerPool:
        (self.control / "clock").write_text("")
        for name in self.names:
            self.start(name)
        return self

    def step(self, now: datetime, timeout: float = 120.0) -> None:
        """Move the clock to `now` and wait until every live worker has ticked at it."""
        self.advance(now)
        self.wait(timeout)

    def advance(self, now: datetime) -> None:
        self.clock = now.isoformat()
        tmp = self.control / "clock.tmp"
        tmp.write_text(self.clock)
        os.replace(tmp, self.control / "clock")

    def wait(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            done = self.control / f"{name}.done"
            while not (done.exists() and done.read_text() == self.clock):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {name} exited {proc.returncode}: {self.log(name)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"worker {name} did not tick at {self.clock}: {self.log(name)}"
                    )
                time.sleep(0.005)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.control / f"{name}.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        (self.control / "clock").write_text("stop")
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def worker_env(db_url: str, sink: object | None = None, **overrides: str) -> dict[str, str]:
    """The environment of a worker process for tests: this process's, with the
    database, the SMTP sink and test settings swapped in (`overrides` win)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "DATABASE_"))}
    env.update(
        DATABASE_URL=db_url,
        TEMPLATES_DIR=str(ROOT / "templates" / "email"),
        GLOBAL_CAPS="",
        SECRET_KEY="test-secret-key-not-for-production",
        PUBLIC_URL="http://nurture.test",
        MAIL_FROM="Nurture <hello@nurture.test>",
    )
    if sink is not None:
        env.update(SMTP_HOST=sink.host, SMTP_PORT=str(sink.port))  # type: ignore[attr-defined]
    env.update(overrides)
    return env
