"""The funnel diagram (app/web/diagram.py): layout, counts, and arrows that never cross a box."""

from __future__ import annotations

import re
from datetime import timedelta

from app.engine.definition import parse_text
from app.engine.model import FunnelDef, Stage, Transition, Trigger
from app.web import diagram
from tests.console_support import FUNNEL

SIX_STEPS = parse_text(FUNNEL.read_text())
FLOW = diagram.Flow(
    live={"read_ebook": 4, "dormant": 2},
    entered={"read_ebook": 10, "watched_video1": 5, "dormant": 3},
    moved={("read_ebook", "watched_video1", "event"): 5, ("read_ebook", "dormant", "timeout"): 1},
    exits={"converted": 1},
)


def test_stages_are_in_columns_by_distance_from_the_first() -> None:
    assert diagram.depths(SIX_STEPS) == {
        "read_ebook": 0,
        "watched_video1": 1,
        "dormant": 1,
        "took_quiz": 2,
        "watched_video2": 3,
        "watched_demo": 4,
    }


def test_an_unreachable_stage_goes_after_the_rest() -> None:
    funnel = FunnelDef(
        key="f",
        name="F",
        topic="t",
        entry=Trigger("go"),
        stages=(
            Stage("a", transitions=(Transition("b", on=Trigger("x")),)),
            Stage("b"),
            Stage("lost"),
        ),
    )
    assert diagram.depths(funnel) == {"a": 0, "b": 1, "lost": 2}


def test_each_transition_row_has_its_moves_and_share_of_entries() -> None:
    ports = diagram.ports(SIX_STEPS, FLOW)["read_ebook"]
    assert [(p.target, p.kind, p.label, p.moved, p.rate) for p in ports] == [
        ("watched_video1", "event", "video_watched", 5, 0.5),
        ("dormant", "timeout", "after 14d", 1, 0.1),
    ]
    assert (
        ports[0].detail
        == "on video_watched where video = explainer-1, percent ≥ 50 → watched_video1"
    )
    assert diagram.ports(SIX_STEPS, FLOW)["took_quiz"][0].rate is None  # no entries yet


def test_transitions_of_one_kind_to_one_stage_share_a_row() -> None:
    funnel = FunnelDef(
        key="f",
        name="F",
        topic="t",
        entry=Trigger("go"),
        stages=(
            Stage(
                "a",
                transitions=(
                    Transition("b", on=Trigger("clicked")),
                    Transition("b", on=Trigger("replied")),
                    Transition("b", after=timedelta(days=3)),
                ),
            ),
            Stage("b"),
        ),
    )
    rows = diagram.ports(funnel, diagram.Flow())["a"]
    assert [(p.label, p.kind) for p in rows] == [
        ("clicked or replied", "event"),
        ("after 3d", "timeout"),
    ]


def _boxes(svg: str) -> list[tuple[float, float, float, float]]:
    return [
        tuple(map(float, m))  # type: ignore[misc]
        for m in re.findall(
            r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" rx="8"/>', svg
        )
    ]


def _segments(path: str) -> list[tuple[float, float, float, float]]:
    """The straight segments of a routed path (M x,y then H/V moves)."""
    x, y = map(float, re.match(r"M([\d.]+),([\d.]+)", path).groups())  # type: ignore[union-attr]
    segments = []
    for command, value in re.findall(r"([HV])([\d.]+)", path):
        nx, ny = (float(value), y) if command == "H" else (x, float(value))
        segments.append((x, y, nx, ny))
        x, y = nx, ny
    return segments


def test_boxes_do_not_overlap_and_routed_arrows_cross_no_box() -> None:
    svg = str(diagram.render(SIX_STEPS, FLOW))
    boxes = _boxes(svg)
    assert len(boxes) == 6
    for i, (x, y, w, h) in enumerate(boxes):
        for ox, oy, ow, oh in boxes[i + 1 :]:
            assert x + w <= ox or ox + ow <= x or y + h <= oy or oy + oh <= y

    routed = [p for p in re.findall(r'd="([^"]+)"', svg) if " H" in p]
    # Into dormant from every later stage and from its neighbour, and back from it.
    assert len(routed) == 5
    for path in routed:
        for x1, y1, x2, y2 in _segments(path)[1:-1]:  # the first and last touch their boxes
            for bx, by, bw, bh in boxes:
                inside_x = max(x1, x2) > bx and min(x1, x2) < bx + bw
                inside_y = max(y1, y2) > by and min(y1, y2) < by + bh
                assert not (inside_x and inside_y), (path, (bx, by))


def test_the_svg_is_labelled_for_screen_readers_and_shows_counts() -> None:
    svg = str(diagram.render(SIX_STEPS, FLOW))
    assert 'role="img" aria-labelledby="dg-title dg-desc"' in svg
    assert '<title id="dg-title">Stages and transitions of From eBook to demo</title>' in svg
    assert '<text class="live" x="' in svg and ">4</text>" in svg
    assert "5 · 50%" in svg and "1 · 10%" in svg
