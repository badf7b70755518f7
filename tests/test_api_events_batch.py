"""POST /events/batch under load and under failure: per-item answers with funnels
live, idempotency when a batch is sent again or twice at once, and no 202 for a
batch whose transaction failed."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from app.models import Contact, Enrollment, Event, Message, StageMove
from app.services import ingest_journeys
from tests.apiclient import Api, freeze
from tests.conftest import at, make_test_app
from tests.helpers import ROOT

MONDAY = at("2026-03-02 10:00")
FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"


def ebook(email: str, id: str | None = None, **extra) -> dict:
    event = {
        "email": email,
        "type": "ebook_downloaded",
        "properties": {"ebook": "seven-fundamentals"},
    }
    return {**event, "id": id, **extra} if id else {**event, **extra}


def video(email: str, id: str) -> dict:
    properties = {"video": "explainer-1", "percent": 75}
    return {"email": email, "type": "video_watched", "properties": properties, "id": id}


@pytest.fixture
def api(app, monkeypatch):
    freeze(monkeypatch, MONDAY)
    client = Api.for_app(app)
    assert client.put("/funnels/b2b-nurture", data=FUNNEL.read_text()).status_code == 201
    assert client.post("/funnels/b2b-nurture/publish").status_code == 200
    return client


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_it_answers_each_item_of_a_mixed_batch_and_applies_the_good_ones(api, sessions):
    events = [
        ebook("ada@example.com", "a-1", occurred_at="2026-03-02T09:00:00+00:00"),
        {"email": "not-an-address", "type": "quiz_taken"},
        video("ada@example.com", "a-2"),  # after the download: moves Ada on
        ebook("ada@example.com", "a-1"),  # the first item again
        {"email": "bob@example.com", "type": "Bad Type"},
        ebook("bob@example.com"),
    ]
    body = api.post("/events/batch", json={"events": events}).get_json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted", "error", "accepted", "duplicate", "error", "accepted"]
    assert (body["accepted"], body["duplicates"], body["errors"]) == (3, 1, 2)
    assert body["results"][3]["event_id"] == body["results"][0]["event_id"]
    assert [r["error"]["field"] for r in body["results"] if r["error"]] == [
        "events[1].email",
        "events[4].type",
    ]
    with sessions() as s:
        stages = dict(
            s.execute(
                select(Contact.email, Enrollment.stage_key).join(
                    Enrollment, Enrollment.contact_id == Contact.id
                )
            ).all()
        )
    assert stages == {"ada@example.com": "watched_video1", "bob@example.com": "read_ebook"}


def test_it_changes_nothing_when_the_same_batch_is_sent_again(api, sessions):
    events = [ebook(f"p{i}@example.com", f"e{i}") for i in range(50)]
    events += [video(f"p{i}@example.com", f"v{i}") for i in range(25)]
    first = api.post("/events/batch", json={"events": events}).get_json()
    rows = [count(sessions, model) for model in (Event, Enrollment, StageMove, Message)]
    again = api.post("/events/batch", json={"events": events}).get_json()
    assert first["accepted"] == 75 and again["duplicates"] == 75
    assert [r["event_id"] for r in again["results"]] == [r["event_id"] for r in first["results"]]
    assert [count(sessions, model) for model in (Event, Enrollment, StageMove, Message)] == rows


def test_it_answers_an_error_and_stores_nothing_when_the_transaction_fails(
    api, sessions, monkeypatch
):
    def broken(self):
        raise OperationalError("INSERT INTO stage_moves ...", {}, Exception("disk I/O error"))

    monkeypatch.setattr(ingest_journeys.Journeys, "write", broken)
    response = api.post("/events/batch", json={"events": [ebook("ada@example.com", "x")]})
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal"
    assert count(sessions, Event) == 0 and count(sessions, Contact) == 0


def test_it_tries_a_batch_again_when_it_loses_a_race(api, sessions, monkeypatch):
    real, calls = ingest_journeys.Journeys.write, []

    def racing(self):
        calls.append(1)
        if len(calls) == 1:  # as if a concurrent batch had enrolled Ada first
            raise IntegrityError("INSERT INTO enrollments ...", {}, Exception("unique"))
        real(self)

    monkeypatch.setattr(ingest_journeys.Journeys, "write", racing)
    response = api.post("/events/batch", json={"events": [ebook("ada@example.com", "x")]})
    assert response.status_code == 202 and response.get_json()["accepted"] == 1
    assert (count(sessions, Event), count(sessions, Enrollment)) == (1, 1)


def test_it_stores_each_event_once_when_the_same_batch_arrives_twice_at_once(pg_only_url):
    app = make_test_app(pg_only_url)
    try:
        api = Api.for_app(app)
        assert api.put("/funnels/b2b-nurture", data=FUNNEL.read_text()).status_code == 201
        assert api.post("/funnels/b2b-nurture/publish").status_code == 200
        events = [ebook(f"p{i}@example.com", f"e{i}") for i in range(400)]
        events += [video(f"p{i}@example.com", f"v{i}") for i in range(400)]
        answers = _at_once(app, api.key, {"events": events}, clients=2)
        assert [status for status, _ in answers] == [202, 202]
        for index in range(len(events)):  # every item accepted by exactly one request
            statuses = sorted(body["results"][index]["status"] for _, body in answers)
            assert statuses == ["accepted", "duplicate"], (index, statuses)
        sessions = app.extensions["nurture.sessions"]
        assert (count(sessions, Event), count(sessions, Contact)) == (800, 400)
        assert (count(sessions, Enrollment), count(sessions, StageMove)) == (400, 800)
    finally:
        app.extensions["nurture.engine"].dispose()


def _at_once(app, key: str, payload: dict, clients: int) -> list[tuple[int, dict]]:
    """POST the same batch from several threads released together."""
    start = threading.Barrier(clients)
    answers: list[tuple[int, dict]] = []

    def post() -> None:
        client = Api(app, key)
        start.wait()
        response = client.post("/events/batch", json=payload)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=post) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
