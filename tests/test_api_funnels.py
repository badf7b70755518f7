"""Funnels through the API: save drafts (YAML or JSON), validate, publish, read, stats."""

from __future__ import annotations

import json

import pytest
from ruamel.yaml import YAML

from tests.apiclient import Api, error_of, freeze
from tests.conftest import at
from tests.helpers import ROOT, run

SOURCE = (ROOT / "funnels" / "b2b-nurture.yaml").read_text()
MONDAY = at("2026-03-02 10:00")
EBOOK = {"type": "ebook_downloaded", "properties": {"ebook": "seven-fundamentals"}}
# A funnel small enough to read in a test: two stages, then a version without `second`.
TWO_STAGES = """\
key: tiny
name: Tiny
topic: nurture
entry: {on: signed_up}
exit: {on: bought, as: converted}
stages:
  - key: first
    emails: [{template: ebook-welcome, after: 0m}]
    transitions: [{on: clicked, to: second}]
  - key: second
    emails: [{template: quiz-invite, after: 1d}]
"""
ONE_STAGE = TWO_STAGES.split("  - key: second")[0].replace(
    "    transitions: [{on: clicked, to: second}]\n", ""
)


@pytest.fixture
def api(app, monkeypatch):
    freeze(monkeypatch, MONDAY)
    return Api.for_app(app, "editor")


def event(api, email: str, **payload) -> None:
    assert api.post("/events", json={"email": email, **payload}).status_code == 202


def test_it_saves_a_draft_that_is_not_live_until_published(api):
    saved = api.put("/funnels/b2b-nurture", data=SOURCE, content_type="application/yaml")
    assert saved.status_code == 201
    assert saved.get_json() == {
        "key": "b2b-nurture",
        "version": 1,
        "created": True,
        "status": "draft",
        "live_version": None,
    }
    event(api, "ada@example.com", **EBOOK)
    assert api.get("/contacts/ada@example.com").get_json()["enrollments"] == []

    published = api.post("/funnels/b2b-nurture/publish")
    assert published.get_json() == {"key": "b2b-nurture", "version": 1, "moved": 0}
    event(api, "bob@example.com", **EBOOK)
    assert len(api.get("/contacts/bob@example.com").get_json()["enrollments"]) == 1


def test_it_makes_no_new_version_for_the_same_definition(api):
    api.put("/funnels/b2b-nurture", data=SOURCE)
    again = api.put("/funnels/b2b-nurture", data=SOURCE)
    assert again.status_code == 200
    assert again.get_json()["created"] is False and again.get_json()["version"] == 1


def test_it_takes_a_json_definition(api):
    as_json = json.dumps(YAML(typ="safe").load(SOURCE))
    response = api.put("/funnels/b2b-nurture", data=as_json, content_type="application/json")
    assert response.status_code == 201


def test_it_reports_problems_with_their_lines_and_refuses_to_save(api):
    broken = SOURCE.replace("template: quiz-invite", "template: no-such-template").replace(
        "to: took_quiz}", "to: nowhere}"
    )
    response = api.put("/funnels/b2b-nurture", data=broken)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]["code"] == "invalid_definition"
    lines = {p["line"] for p in body["problems"]}
    assert (
        SOURCE.splitlines().index("    emails: [{template: quiz-invite, after: 1h}]") + 1 in lines
    )
    assert any(p["stage"] == "watched_video1" for p in body["problems"])
    assert body["error"]["field"] == body["problems"][0]["field"]
    assert api.get("/funnels/b2b-nurture").status_code == 404


def test_it_refuses_a_definition_whose_key_is_not_the_urls(api):
    response = api.put("/funnels/other", data=SOURCE)
    assert response.status_code == 422
    [problem] = response.get_json()["problems"]
    assert (problem["field"], problem["line"]) == ("key", 4)


def test_it_refuses_a_name_too_long_to_store(api):
    response = api.put("/funnels/tiny", data=TWO_STAGES.replace("name: Tiny", "name: " + "n" * 201))
    assert response.status_code == 422
    assert response.get_json()["problems"][0]["field"] == "name"


def test_it_validates_without_saving(api):
    good = api.post("/funnels/b2b-nurture/validate", data=SOURCE)
    assert good.status_code == 200 and good.get_json() == {"ok": True, "problems": []}
    bad = api.post(
        "/funnels/b2b-nurture/validate", data=SOURCE.replace("after: 2d", "after: two days")
    )
    assert bad.status_code == 200
    [problem] = bad.get_json()["problems"]
    assert (
        problem["line"]
        == SOURCE.splitlines().index("      - {template: video1-invite, after: 2d}") + 1
    )
    assert bad.get_json()["ok"] is False
    assert api.get("/funnels").get_json() == {"funnels": []}


def test_it_lists_and_shows_funnels_with_their_versions(api):
    api.put("/funnels/tiny", data=TWO_STAGES)
    api.post("/funnels/tiny/publish")
    api.put("/funnels/tiny", data=TWO_STAGES.replace("name: Tiny", "name: Tiny 2"))
    [summary] = api.get("/funnels").get_json()["funnels"]
    assert (
        summary["key"],
        summary["status"],
        summary["live_version"],
        summary["latest_version"],
    ) == (
        "tiny",
        "live",
        1,
        2,
    )
    shown = api.get("/funnels/tiny").get_json()
    assert [v["number"] for v in shown["versions"]] == [2, 1]
    assert shown["versions"][1]["published_at"] == "2026-03-02T10:00:00+00:00"
    assert shown["versions"][0]["created_by"] == "api:editor"
    assert shown["source"] == TWO_STAGES and shown["definition"]["name"] == "Tiny"  # the live one


def test_it_refuses_a_publish_that_would_strand_contacts(api):
    api.put("/funnels/tiny", data=TWO_STAGES)
    api.post("/funnels/tiny/publish")
    api.post("/contacts/ada@example.com/consent", json={"topics": {"nurture": True}})
    event(api, "ada@example.com", type="signed_up")
    event(api, "ada@example.com", type="clicked")
    api.put("/funnels/tiny", data=ONE_STAGE)
    response = api.post("/funnels/tiny/publish", json={"version": 2})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "publish_refused" and "second" in error["message"]
    assert api.get("/funnels/tiny").get_json()["live_version"] == 1


def test_it_publishes_an_earlier_version_by_number(api):
    api.put("/funnels/tiny", data=TWO_STAGES)
    api.put("/funnels/tiny", data=ONE_STAGE)
    assert api.post("/funnels/tiny/publish", json={"version": 1}).get_json()["version"] == 1
    assert api.get("/funnels/tiny").get_json()["live_version"] == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/funnels/nope/publish", None),
        ("/funnels/tiny/publish", {"version": 9}),
        ("/funnels/nope", None),
        ("/funnels/nope/stats", None),
        ("/funnels/Not%20A%20Key", None),
    ],
)
def test_it_answers_404_for_unknown_funnels_and_versions(api, path, body):
    api.put("/funnels/tiny", data=TWO_STAGES)
    response = api.post(path, json=body) if path.endswith("publish") else api.get(path)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_it_counts_contacts_per_stage_conversions_exits_and_sends(
    api, sessions, settings, smtp_sink
):
    api.put("/funnels/tiny", data=TWO_STAGES)
    api.post("/funnels/tiny/publish")
    for name in ("ada", "bob", "cy", "dee"):
        api.post(f"/contacts/{name}@example.com/consent", json={"topics": {"nurture": True}})
        event(api, f"{name}@example.com", type="signed_up")
    event(api, "bob@example.com", type="clicked")
    event(api, "cy@example.com", type="bought")
    run(sessions, settings, MONDAY, sink=smtp_sink)
    stats = api.get("/funnels/tiny/stats").get_json()
    assert stats["stages"] == [{"key": "first", "contacts": 2}, {"key": "second", "contacts": 1}]
    assert (stats["entered"], stats["active"], stats["exited"], stats["converted"]) == (4, 3, 1, 1)
    assert stats["exits"] == {"converted": 1}
    # ada and dee got the welcome; bob's was cancelled when he moved on (his second
    # stage email is due tomorrow); cy's was cancelled when she converted.
    assert stats["sends"] == {"sent": 2, "cancelled": 2, "scheduled": 1}
