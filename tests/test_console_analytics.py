"""Console analytics: server-side SVG charts, and the page built from funnel_stats."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from app.settings import EngineSettings
from app.web import charts, console_analytics
from tests.console_support import MONDAY, logged_in, with_history

DAYS = [datetime(2026, 3, d, tzinfo=UTC) for d in range(1, 8)]


@pytest.mark.parametrize(
    ("largest", "scale"),
    [(0, (1, 1)), (3, (3, 1)), (7, (8, 2)), (42, (50, 10)), (999, (1000, 200))],
)
def test_the_axis_goes_to_a_round_number_in_a_few_steps(
    largest: int, scale: tuple[int, int]
) -> None:
    assert charts.nice_scale(largest) == scale


def test_a_line_chart_has_a_line_per_series_a_title_and_point_tooltips() -> None:
    svg = charts.line_chart(
        "Emails over time",
        DAYS,
        [
            charts.Series("sent", "Sent", [0, 4, 8, 2, 0, 0, 1]),
            charts.Series("opens", "Opens", [0] * 7),
        ],
    )

    assert svg.count("<polyline") == 2 and svg.count("<circle") == 14
    assert '<title id="chart-title">Emails over time</title>' in svg
    assert "Mar 1 to Mar 7. Totals: Sent 15, Opens 0." in svg
    assert "<title>Mar 3: 8 sent</title>" in svg
    top = re.search(r'<text x="38" y="[\d.]+" text-anchor="end">(\d+)</text></g>', svg)
    assert top is not None and top.group(1) == "8"


def test_labels_are_escaped() -> None:
    svg = charts.bar_chart("Funnel", [charts.Bar("<b>stage</b>", 3, "entered & more")])
    assert "<b>" not in svg and "&lt;b&gt;stage&lt;/b&gt;" in svg and "entered &amp; more" in svg


def test_the_stage_funnel_bars_are_shares_of_the_first_stage() -> None:
    from app.services.analytics import StageStats  # the analytics service's own type

    class Stats:
        stages = [StageStats("a", 1, 40, {"b": 10}), StageStats("b", 5, 10, {})]

    bars = console_analytics.stage_bars(Stats())
    assert [(b.label, b.value, b.note) for b in bars] == [
        ("a", 40, "entered · 100% of the first stage · 1 now"),
        ("b", 10, "entered · 25% of the first stage · 5 now"),
    ]


def test_the_page_says_so_when_analytics_are_not_installed(app: Flask, monkeypatch) -> None:
    monkeypatch.setattr(console_analytics, "funnel_stats", None)
    with_history(app.extensions["nurture.sessions"], EngineSettings.from_config(app.config))
    page = logged_in(app).get("/console/funnels/b2b-nurture/analytics").get_data(as_text=True)
    assert "Analytics are not available in this installation yet" in page


def test_the_page_charts_the_funnel_over_time(
    app: Flask, settings: EngineSettings, monkeypatch
) -> None:
    pytest.importorskip("app.services.analytics")
    with_history(app.extensions["nurture.sessions"], settings)
    monkeypatch.setattr("app.clock.utcnow", lambda: MONDAY + timedelta(days=3))
    client = logged_in(app)

    html = client.get("/console/funnels/b2b-nurture/analytics?days=7").get_data(as_text=True)

    assert html.count('<svg class="chart"') == 3
    assert "Contacts over time" in html and "Emails over time" in html
    assert "Mar 2: 3 entered" in html and "Mar 2: 1 converted" in html and "Mar 2: 3 sent" in html
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "3 Entered 1 Converted 1 Exited 3 Emails sent" in text
    assert "read_ebook 3 1 exit “converted”: 1 (33%) · watched_video1: 1 (33%)" in text
    weekly = client.get("/console/funnels/b2b-nurture/analytics?days=30&interval=week")
    assert weekly.status_code == 200 and "Week of" in weekly.get_data(as_text=True)
