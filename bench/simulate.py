"""The simulator at scale: `flask funnels simulate` on the six-step funnel.

Runs the command itself (a fresh process, as an operator would) for 100,000 contacts
over 90 days and prints its wall time and peak memory; the target is under two
minutes. The same run at a tenth of the contacts gives a ratio that holds on a noisy
machine: cost should grow linearly with the contacts (10x), no worse.

    python bench/simulate.py [--contacts 100000] [--days 90] [--baseline 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNNEL = "funnels/b2b-nurture.yaml"
TARGET_SECONDS = 120


def run(contacts: int, days: int) -> tuple[float, float]:
    """Run the simulate command once; (wall seconds, peak RSS in MB of that process)."""
    args = [sys.executable, "-m", "flask", "funnels", "simulate", FUNNEL]
    args += ["--contacts", str(contacts), "--days", str(days)]
    started = time.perf_counter()
    child = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert child.stdout is not None
    out = child.stdout.read()  # a few dozen lines: the pipe never fills
    child.stdout.close()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or f"Simulated {contacts} contacts" not in out:
        raise SystemExit(f"{' '.join(args[2:])} failed ({child.returncode}):\n{out}")
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    print(
        f"simulate contacts={contacts} days={days} seconds={seconds:.1f} peak_rss_mb={rss_mb:.0f}",
        flush=True,
    )
    return seconds, rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--baseline", type=int, default=10_000, help="0 to skip")
    options = parser.parse_args()
    base = run(options.baseline, options.days)[0] if options.baseline else None
    seconds, _ = run(options.contacts, options.days)
    if base:
        ratio, linear = seconds / base, options.contacts / options.baseline
        print(f"ratio {options.contacts}/{options.baseline}: {ratio:.1f}x (linear {linear:.0f}x)")
    verdict = "met" if seconds < TARGET_SECONDS else "NOT met"
    print(f"target under {TARGET_SECONDS} s at {options.contacts} contacts: {verdict}")


if __name__ == "__main__":
    main()
