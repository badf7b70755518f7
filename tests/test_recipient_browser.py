"""The preference centre in headless Chromium on a 375x812 phone screen, served by a
real HTTP server on loopback; screenshots are kept in the test's artifacts directory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from app import tokens
from app.models import Contact
from app.services import contacts as contacts_svc
from tests.conftest import at, make_test_app
from tests.helpers import ROOT, publish, subscribe

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
MONDAY = at("2026-03-02 10:00")
PHONE = {"width": 375, "height": 812}


@dataclass
class Served:
    app: Flask
    sessions: sessionmaker[Session]
    base: str

    def preferences_url(self, contact_id: int) -> str:
        return f"{self.base}/p/" + tokens.make(
            "preferences", self.app.config["SECRET_KEY"], contact_id, 1
        )


@pytest.fixture
def served(sqlite_url: str) -> Iterator[Served]:
    """The app on a real server at 127.0.0.1 on a free port, with the nurture funnel live."""
    app = make_test_app(sqlite_url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sessions: sessionmaker[Session] = app.extensions["nurture.sessions"]
    publish(sessions, FUNNEL, MONDAY)
    try:
        yield Served(app, sessions, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(5)
        app.extensions["nurture.engine"].dispose()


def consent(sessions: sessionmaker[Session], contact_id: int) -> dict[str, object]:
    with sessions() as s:
        found = s.get(Contact, contact_id)
        assert found is not None
        return contacts_svc.consent_view(found)


def assert_fits_the_screen(page: Page) -> None:
    """Nothing wider than the phone: no sideways scrolling, the save button in view."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = page.get_by_role(
        "button", name=page.locator("button[value=save]").inner_text()
    ).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_it_toggles_a_topic_on_a_phone_screen(
    served: Served, page: Page, artifacts_dir: Path
) -> None:
    ada = subscribe(served.sessions, "ada@example.com", MONDAY)
    subscribe(served.sessions, "ada@example.com", MONDAY, topic="newsletter")
    page.set_viewport_size(PHONE)

    page.goto(served.preferences_url(ada))
    assert page.locator("h1").inner_text() == "Your email preferences"
    assert_fits_the_screen(page)
    newsletter = page.get_by_role("checkbox", name="Newsletter")
    assert newsletter.is_checked()
    newsletter.uncheck()
    page.get_by_role("radio", name="At most one email a week").check()
    page.get_by_role("button", name="Save my choices").click()

    page.get_by_text("Your choices are saved.").wait_for()
    page.screenshot(path=str(artifacts_dir / "preferences-375x812.png"), full_page=True)
    assert not page.get_by_role("checkbox", name="Newsletter").is_checked()
    assert consent(served.sessions, ada) == {
        "status": "active",
        "topics": {"newsletter": "unsubscribed", "nurture": "subscribed"},
        "frequency": "1/7d",
    }
    assert (artifacts_dir / "preferences-375x812.png").stat().st_size > 0


def test_it_shows_the_page_in_german_to_a_german_contact(
    served: Served, page: Page, artifacts_dir: Path
) -> None:
    ada = subscribe(served.sessions, "ada@example.com", MONDAY, locale="de-DE")
    page.set_viewport_size(PHONE)

    page.goto(served.preferences_url(ada))

    page.screenshot(path=str(artifacts_dir / "preferences-de-375x812.png"), full_page=True)
    assert page.locator("h1").inner_text() == "Ihre E-Mail-Einstellungen"
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.get_by_role("radio", name="Höchstens eine E-Mail pro Woche").is_visible()
    assert page.get_by_role("button", name="Auswahl speichern").is_visible()
    assert "Save my choices" not in page.content()
    assert_fits_the_screen(page)
