"""Console templates: list, preview against the sample or a real contact, edit (refused
if it no longer renders), new templates, and a test send through a real SMTP server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import make_test_app
from tests.console_support import MONDAY, logged_in, post
from tests.helpers import TEMPLATES, subscribe
from tests.support.smtp import SmtpSink


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """A copy of the real templates: these tests write files."""
    return Path(shutil.copytree(TEMPLATES, tmp_path / "email"))


@pytest.fixture
def app(sqlite_url: str, templates_dir: Path) -> Iterator[Flask]:
    flask_app = make_test_app(sqlite_url, TEMPLATES_DIR=str(templates_dir))
    yield flask_app
    flask_app.extensions["nurture.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return logged_in(app)


def test_it_lists_templates_with_their_subject_and_layouts_apart(client: FlaskClient) -> None:
    page = unescape(client.get("/console/templates").get_data(as_text=True))
    assert 'Your copy of "Seven Fundamentals" is here' in page
    assert ">_layout</a>" in page and ">_layout</a></th>" not in page


def test_it_previews_against_the_sample_contact(client: FlaskClient) -> None:
    page = unescape(client.get("/console/templates/ebook-welcome").get_data(as_text=True))
    assert 'Your copy of "Seven Fundamentals" is here, Ada' in page
    assert '<iframe class="email-frame" sandbox' in page
    assert "Hi Ada," in page  # the text part


def test_the_double_opt_in_email_previews_and_saves_too(
    client: FlaskClient, templates_dir: Path
) -> None:
    page = unescape(client.get("/console/templates/confirm-subscription").get_data(as_text=True))
    assert 'Please confirm your "newsletter" subscription' in page

    html = client.get("/console/templates/confirm-subscription/edit").get_data(as_text=True)
    source = unescape(html.split('name="html"')[1].split(">", 1)[1].split("</textarea>")[0])
    saved = post(client, "/console/templates/confirm-subscription/edit", {"html": source})
    assert saved.status_code == 302
    assert (templates_dir / "confirm-subscription.txt").exists()  # no text field: kept


def test_it_previews_against_a_real_contact(app: Flask, client: FlaskClient) -> None:
    subscribe(app.extensions["nurture.sessions"], "bob@example.com", MONDAY, first_name="Bob")
    page = unescape(
        client.get("/console/templates/ebook-welcome?contact=BOB@example.com").get_data(
            as_text=True
        )
    )
    assert "is here, Bob" in page and "Preview for bob@example.com" in page

    missing = client.get("/console/templates/ebook-welcome?contact=nobody@example.com")
    assert "There is no contact nobody@example.com" in missing.get_data(as_text=True)


def test_an_edit_that_renders_is_saved(client: FlaskClient, templates_dir: Path) -> None:
    source = (templates_dir / "quiz-invite.html").read_text().replace("</p>", " (edited)</p>", 1)
    response = post(client, "/console/templates/quiz-invite/edit", {"html": source, "text": ""})
    assert response.headers["Location"] == "/console/templates/quiz-invite"
    assert "(edited)" in (templates_dir / "quiz-invite.html").read_text()


def test_an_edit_that_does_not_render_is_refused_with_the_reason(
    client: FlaskClient, templates_dir: Path
) -> None:
    before = (templates_dir / "quiz-invite.html").read_text()
    broken = before.replace(
        "{% endblock %}", "{{ contact.first_name | nosuchfilter }}{% endblock %}"
    )

    response = post(client, "/console/templates/quiz-invite/edit", {"html": broken, "text": ""})

    assert response.status_code == 422
    assert "Not saved: template &#39;quiz-invite&#39;" in response.get_data(as_text=True)
    assert "nosuchfilter" in response.get_data(as_text=True)
    assert (templates_dir / "quiz-invite.html").read_text() == before


def test_a_layout_edit_is_checked_against_every_email(
    client: FlaskClient, templates_dir: Path
) -> None:
    broken = (
        (templates_dir / "_layout.html").read_text().replace("{{ unsubscribe_url }}", "{{ nope }}")
    )
    response = post(client, "/console/templates/_layout/edit", {"html": broken})
    assert response.status_code == 422 and "nope" in response.get_data(as_text=True)


def test_a_new_template_starts_from_a_starter_that_renders(
    client: FlaskClient, templates_dir: Path
) -> None:
    response = post(client, "/console/templates/new", {"name": "spring-offer"})
    assert response.headers["Location"] == "/console/templates/spring-offer/edit"
    assert client.get("/console/templates/spring-offer").status_code == 200
    post(client, "/console/templates/new", {"name": "../escape"})
    assert not (templates_dir.parent / "escape.html").exists()


def test_names_outside_the_directory_are_not_found(client: FlaskClient) -> None:
    assert client.get("/console/templates/..%2Fsecret/edit").status_code == 404
    assert client.get("/console/templates/no-such-template").status_code == 404


def test_a_test_send_reaches_the_typed_address_with_a_test_subject(
    sqlite_url: str, templates_dir: Path, smtp_sink: SmtpSink
) -> None:
    app = make_test_app(
        sqlite_url,
        TEMPLATES_DIR=str(templates_dir),
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=smtp_sink.port,
    )
    client = logged_in(app)

    response = post(client, "/console/templates/ebook-welcome/test", {"to": "Me@Example.com"})

    [received] = smtp_sink.wait_for(1)
    assert received.rcpt_tos == ("me@example.com",)
    assert received.message["Subject"] == '[Test] Your copy of "Seven Fundamentals" is here, Ada'
    assert received.message["X-Nurture-Test"] == "yes"
    assert "Hi Ada," in received.text and "Hi Ada," in received.html
    follow = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Test email sent to me@example.com." in follow
    app.extensions["nurture.engine"].dispose()


def test_a_failed_test_send_says_why(
    sqlite_url: str, templates_dir: Path, smtp_sink: SmtpSink
) -> None:
    app = make_test_app(
        sqlite_url,
        TEMPLATES_DIR=str(templates_dir),
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=smtp_sink.port,
    )
    smtp_sink.reply_rcpt("gone@example.com", "550 5.1.1 No such user")
    client = logged_in(app)

    response = post(client, "/console/templates/ebook-welcome/test", {"to": "gone@example.com"})

    page = unescape(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "The test email was not sent: 550 5.1.1 No such user." in page
    app.extensions["nurture.engine"].dispose()
