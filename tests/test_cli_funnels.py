"""`flask funnels validate|load|export|simulate` and publishing without stranding anyone."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Enrollment, FunnelVersion
from app.services import funnels as funnels_svc
from tests.conftest import at
from tests.helpers import ROOT, enrollment, event, messages, publish, subscribe

EXAMPLE = ROOT / "funnels" / "b2b-nurture.yaml"


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_it_accepts_the_example_funnel(runner):
    result = runner.invoke(args=["funnels", "validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output


def test_it_reports_each_problem_as_file_line_field_message(runner, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        EXAMPLE.read_text()
        .replace("to: watched_video1}", "to: watchd_video1}", 1)
        .replace("after: 2d}", "after: 2 days}", 1)
    )
    result = runner.invoke(args=["funnels", "validate", str(bad)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert any(line.startswith(f"{bad}:17: stages[0].emails[1].after: ") for line in lines), lines
    assert len(lines) >= 1


def test_it_names_the_stage_of_a_transition_to_a_missing_stage(runner, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("to: watched_video1}", "to: watchd_video1}", 1))
    result = runner.invoke(args=["funnels", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:19: stages[0].transitions[0].to: " in result.output
    assert "watchd_video1" in result.output and "did you mean 'watched_video1'" in result.output


def test_it_round_trips_load_export_load(runner, sessions, tmp_path: Path):
    assert runner.invoke(args=["funnels", "load", str(EXAMPLE)]).exit_code == 0
    exported = runner.invoke(args=["funnels", "export", "b2b-nurture"])
    assert exported.exit_code == 0
    again = tmp_path / "again.yaml"
    again.write_text(exported.output)
    second = runner.invoke(args=["funnels", "load", str(again)])
    assert second.exit_code == 0 and "unchanged at version 1" in second.output
    with sessions() as s:
        versions = s.scalars(select(FunnelVersion)).all()
    assert len(versions) == 1
    from app.engine.definition import validate_text

    assert validate_text(exported.output).funnel == validate_text(EXAMPLE.read_text()).funnel


def test_it_refuses_a_publish_that_would_strand_contacts(sessions, runner, tmp_path: Path):
    start = at("2026-03-02 10:00")
    publish(sessions, EXAMPLE, start)
    subscribe(sessions, "ada@example.com", start)
    event(sessions, "ada@example.com", "ebook_downloaded", start, ebook="seven-fundamentals")
    event(sessions, "ada@example.com", "video_watched", start, video="explainer-1", percent=90)
    assert enrollment(sessions, "ada@example.com").stage_key == "watched_video1"

    # Version 2 folds watched_video1 into took_quiz... but forgets to say where contacts go.
    text = EXAMPLE.read_text()
    start_cut = text.index("  - key: watched_video1")
    end_cut = text.index("  - key: took_quiz")
    v2 = (text[:start_cut] + text[end_cut:]).replace("to: watched_video1}", "to: took_quiz}")
    path = tmp_path / "v2.yaml"
    path.write_text(v2)
    result = runner.invoke(args=["funnels", "load", str(path)])
    assert result.exit_code == 1
    assert "1 contact in stage 'watched_video1'" in result.output
    assert "moved: {watched_video1: <stage>}" in result.output

    path.write_text(v2 + "moved: {watched_video1: took_quiz}\n")
    result = runner.invoke(args=["funnels", "load", str(path)])
    assert result.exit_code == 0, result.output
    moved = enrollment(sessions, "ada@example.com")
    assert moved.stage_key == "took_quiz"
    assert [m.template for m in messages(sessions, "ada@example.com") if m.status == "scheduled"][
        -1
    ] == "video2-invite"
    with sessions() as s:
        assert s.scalar(select(Enrollment.version_id)) == funnels_svc.live_funnels(s)[0].version_id


def test_it_simulates_deterministically_for_a_seed(runner):
    args = ["funnels", "simulate", str(EXAMPLE), "--contacts", "60", "--days", "30", "--seed", "7"]
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    assert runner.invoke(args=args).output == first.output
    assert runner.invoke(args=[*args[:-1], "8"]).output != first.output
    out = first.output
    assert "enrolled: 60\n" in out  # every contact enters in the first half of the run
    for stage in ("read_ebook", "watched_video1", "dormant"):
        assert f"  {stage}: " in out
    assert "emails sent: " in out and "caps hit" in out and "converted" in out


def test_it_reports_problems_instead_of_simulating_a_broken_funnel(runner, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        EXAMPLE.read_text().replace("template: quiz-invite", "template: quiz-invitation")
    )
    result = runner.invoke(args=["funnels", "simulate", str(bad), "--contacts", "5", "--days", "2"])
    assert result.exit_code == 1
    assert f"{bad}:" in result.output and "quiz-invitation" in result.output


def test_it_refuses_a_funnel_on_a_segment_that_does_not_exist(runner, tmp_path: Path):
    funnel = tmp_path / "f.yaml"
    funnel.write_text(
        "key: win-back\nname: Win back\ntopic: nurture\n"
        "entry: {segment: lapsed-buyers}\n"
        "exit: {on: purchase_completed, as: converted}\n"
        "stages: [{key: only, emails: [{template: dormant-nudge, after: 0m}]}]\n"
    )
    result = runner.invoke(args=["funnels", "load", str(funnel)])
    assert result.exit_code == 1
    assert f"{funnel}:4: segment: there is no segment 'lapsed-buyers'" in result.output
