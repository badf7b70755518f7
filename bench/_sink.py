"""An aiosmtpd sink in a process of its own, for benchmarks.

In a thread of the benchmark's own process the sink would share one GIL with the
sender it measures; in its own process it gets a core, as a real relay would.

    with SinkProcess() as sink:
        ...send to sink.host, sink.port...
        sink.count()  # messages accepted so far

Run as a script it serves until its standard input closes, printing its port first
and answering each line "count" with the number of messages accepted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SinkProcess:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SinkProcess:
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        return self

    def count(self) -> int:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write("count\n")
        self._proc.stdin.flush()
        return int(self._proc.stdout.readline())

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=30)


def _serve() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.support.smtp import SmtpSink

    # Keep nothing, only count: a 100,000-message run would otherwise hold every message.
    with SmtpSink(keep=False) as sink:
        print(sink.port, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(sink.accepted, flush=True)


if __name__ == "__main__":
    _serve()
