"""`flask funnels simulate`: the fast in-memory simulator tells the same story as the
real engine on a database (the `--exact` run), deterministically for a seed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from app.simulate import SimulationError, Summary, simulate
from tests.helpers import ROOT, TEMPLATES

EXAMPLE = (ROOT / "funnels" / "b2b-nurture.yaml").read_text()

# Re-entry, two exit goals, `in`/`ne`/`gt` conditions, a cap that skips instead of
# deferring, no send window, and a template that renders for some contacts and events
# only (the quick quiz-takers' event has no `percent`, some contacts no timezone).
LOOP = """\
key: loop
name: Loop
topic: nurture
reentry: true
on_cap: skip
entry: {on: signed_up, where: {plan: {in: [pro, team]}}}
exit:
  - {on: purchased, as: converted}
  - {on: churned, where: {reason: {ne: price}}, as: lost}
caps: [{max: 2, per: 1d}]
stages:
  - key: a
    emails: [{template: ebook-welcome, after: 0m}, {template: video1-invite, after: 30m}]
    transitions:
      - {on: signed_up, where: {plan: team}, to: b}
      - {after: 1h, to: b}
  - key: b
    emails: [{template: needs-percent, after: 0m}, {template: quiz-invite, after: 3h}]
    transitions:
      - {on: video_watched, where: {percent: {gt: 3}, video: x}, to: a}
      - {after: 2d, to: a}
"""

NEEDS_PERCENT = """\
---
subject: You watched {{ event.properties.percent }}%
---
<p>Hi {{ contact.first_name }}, {{ event.properties.percent }}% ({{ contact.timezone.upper() }})</p>
"""


def config(templates: Path = TEMPLATES, caps: str = "1/1d,3/7d") -> dict[str, Any]:
    return {"TEMPLATES_DIR": str(templates), "PUBLIC_URL": "http://sim.test", "GLOBAL_CAPS": caps}


def both(source: str, cfg: dict[str, Any], **run: int) -> tuple[Summary, Summary]:
    """The fast and the database-backed summaries of one run."""
    return simulate(source, cfg, **run), simulate(source, cfg, exact=True, **run)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """The shipped templates plus one that fails to render in some contexts."""
    directory = tmp_path / "email"
    shutil.copytree(TEMPLATES, directory)
    (directory / "needs-percent.html").write_text(NEEDS_PERCENT)
    return directory


def test_it_gives_the_same_summary_as_the_real_engine() -> None:
    fast, exact = both(EXAMPLE, config(), contacts=250, days=35, seed=7)
    # Whole summaries: per-stage counts, sends per template, every message status,
    # caps hit, window waits, exits. The run must reach enough of the funnel to mean it.
    assert fast == exact
    assert fast.enrolled == 250 and fast.caps_hit > 0 and fast.window_waits > 0
    assert fast.sent["dormant-last-call"] > 0 and fast.exits["converted"] > 0
    assert fast.statuses["cancelled"] > 0 and fast.statuses["deferred"] > 0


def test_it_agrees_on_skipped_failed_and_re_entered_contacts(templates: Path) -> None:
    fast, exact = both(LOOP, config(templates, caps=""), contacts=100, days=14, seed=7)
    assert fast == exact
    assert fast.enrolled > 100  # some contacts came back after leaving
    assert fast.statuses["skipped"] > 0 and fast.statuses["failed"] > 0
    assert fast.sent["needs-percent"] > 0  # ... and the same template went out for others
    assert set(fast.exits) == {"converted", "lost"}


@pytest.mark.slow
def test_it_agrees_in_a_named_timezone_window_at_the_weekend() -> None:
    source = EXAMPLE.replace(
        'days: mon-fri, from: "09:00", to: "17:00", timezone: contact',
        'days: "sat,sun", from: "20:00", to: "23:30", timezone: Asia/Tokyo',
    )
    assert "Asia/Tokyo" in source
    fast, exact = both(source, config(caps=""), contacts=200, days=40, seed=2)
    assert fast == exact and fast.window_waits > 0


def test_it_is_deterministic_for_a_seed() -> None:
    run = {"contacts": 2000, "days": 60}
    first = simulate(EXAMPLE, config(), seed=3, **run)
    assert simulate(EXAMPLE, config(), seed=3, **run) == first
    assert simulate(EXAMPLE, config(), seed=4, **run) != first
    lines = first.format().splitlines()
    assert lines[:2] == ["Simulated 2000 contacts over 60 days (seed 3)", "enrolled: 2000"]
    stages = [line.split(":")[0].strip() for line in lines[4:10]]
    assert stages == [  # the funnel's own order
        "read_ebook",
        "watched_video1",
        "took_quiz",
        "watched_video2",
        "watched_demo",
        "dormant",
    ]


def test_it_refuses_a_funnel_on_a_segment_naming_the_line() -> None:
    source = (ROOT / "funnels" / "cart-recovery.yaml").read_text()
    for exact in (False, True):
        with pytest.raises(SimulationError) as raised:
            simulate(source, config(), contacts=5, days=2, seed=1, exact=exact)
        assert raised.value.lines == [
            "funnel:8: segment: the simulator's contacts only send events, so a funnel on "
            "segment 'cart-abandoners' cannot be simulated"
        ]


def test_it_prints_the_same_report_with_exact(app) -> None:
    runner = app.test_cli_runner()
    args = ["funnels", "simulate", str(ROOT / "funnels" / "b2b-nurture.yaml")]
    args += ["--contacts", "40", "--days", "10", "--seed", "5"]
    fast, exact = runner.invoke(args=args), runner.invoke(args=[*args, "--exact"])
    assert fast.exit_code == 0 and exact.exit_code == 0, fast.output + exact.output
    assert fast.output == exact.output
    assert "Simulated 40 contacts over 10 days (seed 5)" in fast.output
