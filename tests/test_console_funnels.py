"""Console funnels: the list, the diagram with counts, the editor (checking, drafts,
versions), the diff, publishing with the stranded-contact check, and simulation."""

from __future__ import annotations

import re
from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.models import Funnel, FunnelVersion
from app.settings import EngineSettings
from tests.console_support import FUNNEL, csrf_token, logged_in, post, with_history
from tests.helpers import ROOT

SOURCE = FUNNEL.read_text()
EDIT = "/console/funnels/b2b-nurture/edit"


@pytest.fixture
def client(app: Flask, settings: EngineSettings) -> FlaskClient:
    with_history(app.extensions["nurture.sessions"], settings)
    return logged_in(app)


def text_of(html: str) -> str:
    """The page's text, tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def versions(app: Flask) -> list[FunnelVersion]:
    with app.extensions["nurture.sessions"]() as session:
        return list(session.scalars(select(FunnelVersion).order_by(FunnelVersion.number)))


def test_it_lists_funnels_with_status_version_and_live_counts(client: FlaskClient) -> None:
    page = text_of(client.get("/console/").get_data(as_text=True))
    # ada and bob are still in the funnel; cy converted.
    assert "From eBook to demo b2b-nurture live v1 live 2 3" in page


def test_the_diagram_shows_each_stage_with_its_count_and_each_transition_with_its_moves(
    client: FlaskClient,
) -> None:
    html = client.get("/console/funnels/b2b-nurture").get_data(as_text=True)
    svg = html[html.index("<svg") : html.index("</svg>")]

    assert 'role="img"' in svg
    assert "read_ebook: 1 now, 3 entered" in svg  # bob waits; ada moved on; cy left
    assert "watched_video1: 1 now, 1 entered" in svg
    assert (
        "on video_watched where video = explainer-1, percent ≥ 50 → watched_video1: 1 · 33%" in svg
    )
    assert svg.count('class="edge event"') == 6 and svg.count('class="edge timeout"') == 5
    page = text_of(html)
    assert "3 entered so far" in page
    assert "Exit “converted”: on form_submitted where form = contact-us, from any stage · 1" in page


def test_check_lists_problems_with_line_numbers_without_javascript(client: FlaskClient) -> None:
    typo = SOURCE.replace(
        "    transitions:\n      - {on: quiz_taken", "    transitons:\n      - {on: quiz_taken"
    )
    line = typo.splitlines().index("    transitons:") + 1

    response = post(client, EDIT, {"source": typo, "action": "check"})

    page = text_of(response.get_data(as_text=True))
    assert (
        f"Line {line} stages[1].transitons : unknown field 'transitons' "
        "(did you mean 'transitions'?)" in page
    )
    assert "1 problem to fix." in page


def test_the_validation_endpoint_uses_the_cli_validator(client: FlaskClient) -> None:
    token = csrf_token(client, EDIT)
    broken = SOURCE.replace("template: quiz-invite", "template: quiz-invitation")
    answer = client.post(
        "/console/validate", json={"source": broken}, headers={"X-CSRFToken": token}
    ).get_json()

    [problem] = answer["problems"]
    assert answer["ok"] is False
    assert (
        problem["line"]
        == broken.splitlines().index("    emails: [{template: quiz-invitation, after: 1h}]") + 1
    )
    assert "quiz-invitation" in problem["message"] and problem["stage"] == "watched_video1"
    fine = client.post("/console/validate", json={"source": SOURCE}, headers={"X-CSRFToken": token})
    assert fine.get_json() == {"ok": True, "problems": []}


def test_a_draft_is_kept_but_not_versioned(app: Flask, client: FlaskClient) -> None:
    draft = SOURCE.replace("after: 1d}", "after: 2d}") + "# still thinking\n"
    post(client, EDIT, {"source": draft, "action": "draft"})

    assert "# still thinking" in client.get(EDIT).get_data(as_text=True)
    assert len(versions(app)) == 1
    post(client, EDIT, {"source": draft, "action": "discard"})
    assert "# still thinking" not in client.get(EDIT).get_data(as_text=True)


def test_save_makes_a_version_that_is_not_live_until_published(
    app: Flask, client: FlaskClient
) -> None:
    changed = SOURCE.replace(
        "{template: demo-invite, after: 1d}", "{template: demo-invite, after: 2d}"
    )
    saved = post(client, EDIT, {"source": changed, "action": "save"})
    assert saved.headers["Location"] == "/console/funnels/b2b-nurture/versions/2"
    page = text_of(client.get(saved.headers["Location"]).get_data(as_text=True))
    assert "Saved as version 2. It is not live until you publish it." in page
    assert "Publishing keeps 2 contacts in the stages they are in now." in page

    published = post(client, "/console/funnels/b2b-nurture/versions/2/publish")
    assert published.headers["Location"] == "/console/funnels/b2b-nurture"
    with app.extensions["nurture.sessions"]() as session:
        funnel = session.scalar(select(Funnel))
        assert funnel is not None and funnel.live_version_id == versions(app)[1].id
    assert versions(app)[1].created_by == "ada@nurture.test"


def test_save_refuses_an_invalid_definition_or_another_funnels_key(
    app: Flask, client: FlaskClient
) -> None:
    invalid = post(client, EDIT, {"source": "key: b2b-nurture\n", "action": "save"})
    assert invalid.status_code == 422 and "problems to fix" in invalid.get_data(as_text=True)
    renamed = post(
        client, EDIT, {"source": SOURCE.replace("key: b2b-nurture", "key: other"), "action": "save"}
    )
    assert renamed.status_code == 422
    assert "but this is the funnel b2b-nurture" in renamed.get_data(as_text=True)
    assert len(versions(app)) == 1


def test_publish_is_refused_in_plain_words_when_it_would_strand_contacts(
    app: Flask, client: FlaskClient
) -> None:
    # ada is in watched_video1; this version drops that stage without `moved`.
    without = SOURCE.replace("to: watched_video1}", "to: took_quiz}")
    start = without.index("  - key: watched_video1")
    without = without[:start] + without[without.index("  - key: took_quiz") :]
    post(client, EDIT, {"source": without, "action": "save"})

    page = text_of(client.get("/console/funnels/b2b-nurture/versions/2").get_data(as_text=True))
    assert (
        "This version cannot be published yet: there is 1 contact in stage “watched_video1”, "
        "which this version removes" in page
    )
    assert "moved: {watched_video1: <stage>}" in page
    refused = post(client, "/console/funnels/b2b-nurture/versions/2/publish")
    assert "cannot be published yet" in text_of(
        client.get(refused.headers["Location"]).get_data(as_text=True)
    )
    assert versions(app)[1].published_at is None

    moved = without.replace("stages:\n", "moved: {watched_video1: took_quiz}\nstages:\n")
    post(client, EDIT, {"source": moved, "action": "save"})
    page = text_of(client.get("/console/funnels/b2b-nurture/versions/3").get_data(as_text=True))
    assert "1 contact in the removed stage “watched_video1” will move to “took_quiz”." in page
    post(client, "/console/funnels/b2b-nurture/versions/3/publish")
    assert "1 contact moved out of removed stages" in text_of(
        client.get("/console/funnels/b2b-nurture").get_data(as_text=True)
    )


def test_the_diff_shows_the_changed_lines_between_any_two_versions(client: FlaskClient) -> None:
    post(client, EDIT, {"source": SOURCE.replace("priority: 10", "priority: 20"), "action": "save"})
    post(client, EDIT, {"source": SOURCE.replace("priority: 10", "priority: 30"), "action": "save"})

    html = client.get("/console/funnels/b2b-nurture/diff?a=1&b=3").get_data(as_text=True)

    assert '<span class="del"><del>-priority: 10</del>' in html
    assert '<span class="add"><ins>+priority: 30</ins>' in html
    assert "priority: 20" not in html
    assert "same version twice" in client.get("/console/funnels/b2b-nurture/diff?a=2&b=2").get_data(
        as_text=True
    )


def test_a_new_funnel_starts_from_a_valid_starter_and_is_saved_as_version_one(
    app: Flask, client: FlaskClient
) -> None:
    page = client.get("/console/funnels/new").get_data(as_text=True)
    starter = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S).group(1)  # type: ignore[union-attr]
    checked = post(
        client, "/console/funnels/new", {"source": starter.replace("&#39;", "'"), "action": "check"}
    )
    assert "No problems: this definition is valid." in checked.get_data(as_text=True)

    saved = post(client, "/console/funnels/new", {"source": starter, "action": "save"})
    assert saved.headers["Location"] == "/console/funnels/new-funnel/versions/1"
    again = post(client, "/console/funnels/new", {"source": starter, "action": "save"})
    assert "A funnel with key new-funnel exists already" in again.get_data(as_text=True)


def test_simulate_shows_the_simulators_summary(client: FlaskClient) -> None:
    response = post(
        client, EDIT, {"source": SOURCE, "action": "simulate", "contacts": "20", "days": "2"}
    )
    html = response.get_data(as_text=True)
    assert "Simulated 20 contacts over 2 days (seed 1)" in html
    assert "stage: entered / in it at the end" in html


def test_simulate_says_why_it_cannot_run_a_funnel_entered_on_a_segment(
    client: FlaskClient,
) -> None:
    source = (ROOT / "funnels" / "cart-recovery.yaml").read_text()
    response = post(client, "/console/funnels/new", {"source": source, "action": "simulate"})
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "The simulator cannot run this funnel" in html and "segment" in html
    assert "Fix the problems first" not in html


def test_an_unknown_funnel_is_a_plain_404(client: FlaskClient) -> None:
    response = client.get("/console/funnels/nope")
    assert response.status_code == 404 and "There is nothing here" in response.get_data(
        as_text=True
    )
