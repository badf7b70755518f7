"""GET /api/v1/funnels/<key>/stats?from=&to=&interval=: the analytics over time."""

from __future__ import annotations

from tests.apiclient import Api, error_of
from tests.conftest import at
from tests.helpers import ROOT, event, publish, run, subscribe

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"


def test_it_answers_entered_sent_and_conversions_per_day(app, sessions, settings, smtp_sink):
    monday = at("2026-03-02 10:00")
    publish(sessions, FUNNEL, monday)
    for name in ("ada", "bob"):
        subscribe(sessions, f"{name}@example.com", monday, timezone="Europe/London")
        event(
            sessions, f"{name}@example.com", "ebook_downloaded", monday, ebook="seven-fundamentals"
        )
    run(sessions, settings, monday, sink=smtp_sink)
    event(sessions, "bob@example.com", "form_submitted", at("2026-03-03 12:00"), form="contact-us")

    api = Api.for_app(app)
    answer = api.get(
        "/funnels/b2b-nurture/stats?from=2026-03-02T00:00:00%2B00:00&to=2026-03-05T00:00:00%2B00:00"
    )
    assert answer.status_code == 200, answer.data
    body = answer.get_json()
    over = body["over_time"]
    assert len(over["buckets"]) == 3 and over["buckets"][0].startswith("2026-03-02")
    assert over["series"]["entered"] == [2, 0, 0]
    assert over["series"]["sent"] == [2, 0, 0]
    assert over["series"]["converted"] == [0, 1, 0]
    assert over["exits"] == {"converted": 1}
    assert body["converted"] == 1  # the current counts are still there


def test_it_refuses_a_backwards_or_malformed_range(app, sessions):
    publish(sessions, FUNNEL, at("2026-03-02 10:00"))
    api = Api.for_app(app)
    backwards = api.get(
        "/funnels/b2b-nurture/stats?from=2026-03-05T00:00:00Z&to=2026-03-01T00:00:00Z"
    )
    assert backwards.status_code == 422 and error_of(backwards)["field"] == "from"
    garbage = api.get("/funnels/b2b-nurture/stats?from=yesterday")
    assert garbage.status_code == 422 and error_of(garbage)["field"] == "from"
    assert api.get("/funnels/b2b-nurture/stats?interval=hour").status_code == 422
