"""Console: a funnel's analytics (contacts and emails over time, the stage funnel)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import render_template, request

from app import clock, database
from app.web import charts
from app.web.console import bp
from app.web.console_funnels import funnel_or_404

funnel_stats: Callable[..., Any] | None
try:
    from app.services.analytics import funnel_stats
except ModuleNotFoundError as exc:  # an installation without the analytics service
    if exc.name != "app.services.analytics":
        raise
    funnel_stats = None

PERIODS = {7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}
INTERVALS = {"day": "By day", "week": "By week"}
CONTACT_SERIES = (("entered", "Entered"), ("converted", "Converted"), ("exited", "Exited"))
EMAIL_SERIES = (
    ("sent", "Sent"),
    ("opens", "Opens"),
    ("clicks", "Clicks"),
    ("unsubscribes", "Unsubscribes"),
)
TOTALS = (
    ("entered", "Entered"),
    ("converted", "Converted"),
    ("exited", "Exited"),
    ("sent", "Emails sent"),
    ("opens", "Opens"),
    ("clicks", "Clicks"),
    ("unsubscribes", "Unsubscribes"),
    ("deferred", "Deferred"),
    ("suppressed", "Suppressed"),
    ("failed", "Failed"),
)


def _series(stats: Any, wanted: tuple[tuple[str, str], ...]) -> list[charts.Series]:
    length = len(stats.buckets)
    return [
        charts.Series(key, label, list(stats.series.get(key, [0] * length)))
        for key, label in wanted
    ]


def stage_bars(stats: Any) -> list[charts.Bar]:
    """Entries per stage, as a share of the first stage's: the stage-to-stage funnel."""
    first = stats.stages[0].entered if stats.stages else 0
    bars = []
    for stage in stats.stages:
        share = f"entered · {stage.entered / first:.0%} of the first stage" if first else "entered"
        bars.append(charts.Bar(stage.key, stage.entered, f"{share} · {stage.current} now"))
    return bars


def _choices() -> tuple[int, str]:
    days = request.args.get("days", 30, type=int)
    interval = request.args.get("interval", "day")
    return (days if days in PERIODS else 30), (interval if interval in INTERVALS else "day")


@bp.get("/funnels/<key>/analytics")
def analytics(key: str) -> str:
    session = database.session()
    funnel = funnel_or_404(session, key)
    days, interval = _choices()
    common: dict[str, Any] = dict(
        funnel=funnel, days=days, interval=interval, periods=PERIODS, intervals=INTERVALS
    )
    if funnel_stats is None:
        return render_template("console/analytics.html", stats=None, **common)
    end = clock.utcnow()
    stats = funnel_stats(session, key, start=end - timedelta(days=days), end=end, interval=interval)
    contacts = _series(stats, CONTACT_SERIES)
    emails = _series(stats, EMAIL_SERIES)
    return render_template(
        "console/analytics.html",
        stats=stats,
        **common,
        contacts=contacts,
        emails=emails,
        contacts_chart=charts.line_chart(
            "Contacts over time",
            stats.buckets,
            contacts,
            interval=interval,
            chart_id="contacts-chart",
        ),
        emails_chart=charts.line_chart(
            "Emails over time", stats.buckets, emails, interval=interval, chart_id="emails-chart"
        ),
        funnel_chart=charts.bar_chart(
            "Stage-to-stage funnel", stage_bars(stats), chart_id="funnel-chart"
        ),
        totals=[(label, stats.totals.get(k, 0)) for k, label in TOTALS if k in stats.totals],
        label=charts.bucket_label,
    )
