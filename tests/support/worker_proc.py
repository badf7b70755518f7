"""A worker process on a shared, simulated clock, for multi-process tests and benchmarks.

    python -m tests.support.worker_proc CONTROL_DIR NAME

It reads the time to tick at from CONTROL_DIR/clock (ISO 8601; "stop" ends it),
runs the real `run_once` tick as of that time, then writes the time to
CONTROL_DIR/NAME.done, so a coordinator can step time for several workers and
know when they have all caught up. Configuration comes from the environment,
as for `flask worker`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic, so the coordinator never reads half a line


def main(control: Path, name: str) -> None:
    from app import create_app
    from app.clock import parse_iso
    from app.runner import run_once

    app = create_app()
    worker = f"{name}:{os.getpid()}"
    done = ""
    while True:
        clock = (control / "clock").read_text().strip()
        if clock == "stop":
            return
        if clock != done:
            run_once(app, parse_iso(clock), worker=worker)
            done = clock
            _write(control / f"{name}.done", done)
        else:
            time.sleep(0.005)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
