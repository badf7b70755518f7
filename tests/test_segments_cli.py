"""`flask segments validate|load|export|members|refresh`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import at
from tests.helpers import event
from tests.segment_helpers import SEGMENTS

EXAMPLES = sorted(str(p) for p in SEGMENTS.glob("*.yaml"))


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_it_accepts_the_example_segments(runner):
    result = runner.invoke(args=["segments", "validate", *EXAMPLES])
    assert result.exit_code == 0, result.output


def test_it_reports_each_problem_as_file_line_field_message(runner, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "key: bad\nname: Bad\nmatch:\n  all:\n"
        "    - {performed: add_to_cart, within: 2 days}\n"
        "    - {segment: hig-value}\n"
    )
    result = runner.invoke(args=["segments", "validate", str(bad), *EXAMPLES])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{bad}:5: match.all[0].within: '2 days' is not a duration: write a whole number and "
        "a unit, m, h, d or w, like 2d",
    ]
    bad.write_text(bad.read_text().replace("2 days", "2d"))
    result = runner.invoke(args=["segments", "validate", str(bad), *EXAMPLES])
    assert result.stdout.splitlines() == [
        f"{bad}:6: match.all[1].segment: there is no segment 'hig-value' "
        "(did you mean 'high-value'?)",
    ]


def test_it_loads_segments_that_build_on_each_other_in_one_go(runner, tmp_path: Path):
    vip = tmp_path / "quiet-vip.yaml"
    vip.write_text(
        "key: quiet-vip\nname: Quiet VIPs\n"
        "match: {all: [{segment: high-value}, {segment: dormant-readers}]}\n"
    )
    result = runner.invoke(args=["segments", "load", str(vip), *EXAMPLES])
    assert result.exit_code == 0, result.output
    assert f"{vip}: quiet-vip published as version 1" in result.output
    again = runner.invoke(args=["segments", "load", str(vip)])
    assert again.exit_code == 0 and "unchanged at version 1" in again.output
    exported = runner.invoke(args=["segments", "export", "quiet-vip"])
    assert exported.output == vip.read_text()


def test_it_loads_nothing_when_a_file_is_wrong(runner, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: bad\nname: Bad\nmatch: {segment: nowhere}\n")
    result = runner.invoke(args=["segments", "load", *EXAMPLES, str(bad)])
    assert result.exit_code == 1
    assert runner.invoke(args=["segments", "members", "high-value"]).exit_code == 1


def test_it_lists_and_counts_members(runner, sessions):
    assert runner.invoke(args=["segments", "load", *EXAMPLES]).exit_code == 0
    spent = {"bo@example.com": 600, "cy@example.com": 1200, "al@example.com": 1800}
    for email, amount in spent.items():
        event(sessions, email, "purchase_completed", at("2026-03-02 10:00"), amount=amount)
    counted = runner.invoke(args=["segments", "members", "high-value", "--count"])
    assert counted.output == "2\n"
    listed = runner.invoke(args=["segments", "members", "high-value"])
    assert listed.output.splitlines() == [  # in the order they became contacts
        "cy@example.com\t2026-03-02T10:00:00+00:00",
        "al@example.com\t2026-03-02T10:00:00+00:00",
    ]


def test_it_brings_due_memberships_up_to_date(runner, sessions):
    assert runner.invoke(args=["segments", "load", *EXAMPLES]).exit_code == 0
    event(sessions, "al@example.com", "add_to_cart", at("2026-03-02 10:00"))
    early = runner.invoke(args=["segments", "refresh", "--now", "2026-03-02T12:00:00+00:00"])
    assert early.exit_code == 0, early.output
    result = runner.invoke(args=["segments", "refresh", "--now", "2026-03-03T10:00:00+00:00"])
    assert result.output == "1 contact brought up to date\n"
    counted = runner.invoke(args=["segments", "members", "cart-abandoners", "--count"])
    assert counted.output == "1\n"
