"""The marketer console end to end in headless Chromium, against the app served on
loopback: log in, the funnel diagram with counts, a typo caught as you type, fix and
publish, a template preview, a contact's timeline, analytics charts. Each page's
screenshot is kept in the test's artifacts directory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.settings import EngineSettings
from tests.conftest import make_test_app
from tests.console_support import FUNNEL, MONDAY, PASSWORD, Served, make_user, serve, with_history

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

SOURCE = FUNNEL.read_text()
TABLET = {"width": 820, "height": 1180}


@pytest.fixture
def served(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The console with the six-step funnel and some history, its clock on that week."""
    app = make_test_app(sqlite_url)
    with_history(app.extensions["nurture.sessions"], EngineSettings.from_config(app.config))
    make_user(app, "maya@example.com", role="admin")
    monkeypatch.setattr("app.clock.utcnow", lambda: MONDAY + timedelta(days=2))
    with serve(app) as running:
        yield running
    app.extensions["nurture.engine"].dispose()


def shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def log_in(page: Page, served: Served, artifacts: Path | None = None) -> None:
    page.goto(f"{served.base}/console/")
    page.get_by_label("Email").fill("maya@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    if artifacts:
        shot(page, artifacts, "01-login")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Funnels").wait_for()


def see_the_diagram(page: Page, artifacts: Path) -> None:
    shot(page, artifacts, "02-funnels")
    page.get_by_role("link", name="From eBook to demo").click()
    diagram = page.get_by_role("img", name="Stages and transitions of From eBook to demo")
    diagram.wait_for()
    assert diagram.locator("g.stage").count() == 6
    read_ebook = diagram.locator("g.stage", has_text="read_ebook")
    # SVG nodes have text content, not rendered "inner text".
    assert read_ebook.locator("text.live").text_content() == "1"  # bob is still there
    assert "3 entered" in (read_ebook.text_content() or "")
    assert "1 · 33%" in (read_ebook.locator("g.port.event").text_content() or "")
    shot(page, artifacts, "03-funnel-diagram")


def fix_a_typo_and_publish(page: Page, artifacts: Path) -> None:
    page.get_by_role("link", name="Editor").click()
    editor = page.get_by_label("Definition (YAML)")
    typo = SOURCE.replace(
        "    transitions:\n      - {on: quiz_taken", "    transitons:\n      - {on: quiz_taken"
    )
    line = typo.splitlines().index("    transitons:") + 1
    editor.fill(typo)
    problem = page.locator("#problems li").first
    problem.get_by_text(f"Line {line}").wait_for()  # as you type: no button pressed
    assert "did you mean 'transitions'?" in problem.inner_text()
    assert page.locator(".gutter .has-problem").inner_text() == str(line)
    shot(page, artifacts, "04-editor-typo")

    editor.fill(
        SOURCE.replace("{template: demo-invite, after: 1d}", "{template: demo-invite, after: 2d}")
    )
    page.get_by_text("No problems: this definition is valid.").wait_for()
    page.get_by_role("button", name="Save as new version").click()
    page.get_by_text("Saved as version 2.").wait_for()
    assert page.get_by_text(
        "Publishing keeps 2 contacts in the stages they are in now."
    ).is_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Publish version 2").click()
    page.get_by_text("Version 2 is live.").wait_for()
    shot(page, artifacts, "05-published")
    page.goto(page.url.rstrip("/") + "/diff?a=1&b=2")
    assert (
        page.locator("pre.diff ins").inner_text()
        == "+    emails: [{template: demo-invite, after: 2d}]"
    )
    shot(page, artifacts, "06-diff")


def preview_a_template(page: Page, artifacts: Path) -> None:
    page.get_by_role("link", name="Templates").click()
    page.get_by_role("row", name="ebook-welcome").get_by_role("link", name="Preview").click()
    frame = page.frame_locator("iframe.email-frame")
    frame.get_by_text("Hi Ada,").wait_for()
    page.get_by_label("Preview for a contact").fill("bob@example.com")
    page.get_by_role("button", name="Preview", exact=True).click()
    frame.get_by_text("Hi Bob,").wait_for()
    assert "is here, Bob" in page.locator(".subject").inner_text()
    shot(page, artifacts, "07-template-preview")


def find_a_contact(page: Page, artifacts: Path) -> None:
    page.get_by_role("link", name="Contacts").click()
    page.get_by_label("Search contacts").fill("company=Acme")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="ada@example.com").click()
    timeline = page.locator("ol.timeline")
    timeline.wait_for()
    text = timeline.inner_text()
    assert "video_watched" in text and "Moved to watched_video1" in text
    assert "ebook-welcome" in text and "sent" in text
    assert "Topic nurture: not set → subscribed" in text
    shot(page, artifacts, "08-contact-timeline")


def open_analytics(page: Page, artifacts: Path) -> None:
    pytest.importorskip("app.services.analytics")
    page.get_by_role("link", name="Funnels").click()
    page.get_by_role("row", name="From eBook to demo").get_by_role("link", name="Analytics").click()
    chart = page.get_by_role("img", name="Contacts over time")
    chart.wait_for()
    assert chart.locator("polyline").count() == 3
    assert page.get_by_role("img", name="Stage-to-stage funnel").is_visible()
    shot(page, artifacts, "09-analytics")


def test_a_marketer_works_through_the_console(
    page: Page, served: Served, artifacts_dir: Path
) -> None:
    log_in(page, served, artifacts_dir)
    see_the_diagram(page, artifacts_dir)
    fix_a_typo_and_publish(page, artifacts_dir)
    preview_a_template(page, artifacts_dir)
    find_a_contact(page, artifacts_dir)
    open_analytics(page, artifacts_dir)


UNLABELLED = """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(field => !field.labels.length && !field.getAttribute('aria-label'))
  .map(field => field.name || field.id)"""


def test_every_page_fits_a_tablet_and_labels_every_field(
    page: Page, served: Served, artifacts_dir: Path
) -> None:
    page.set_viewport_size(TABLET)
    log_in(page, served)
    for name, path in [
        ("funnels", "/console/"),
        ("funnel", "/console/funnels/b2b-nurture"),
        ("editor", "/console/funnels/b2b-nurture/edit"),
        ("new-funnel", "/console/funnels/new"),
        ("versions", "/console/funnels/b2b-nurture/versions"),
        ("version", "/console/funnels/b2b-nurture/versions/1"),
        ("templates", "/console/templates"),
        ("template", "/console/templates/ebook-welcome"),
        ("template-edit", "/console/templates/ebook-welcome/edit"),
        ("contacts", "/console/contacts?q=ada"),
        ("contact", "/console/contacts/1"),
        ("analytics", "/console/funnels/b2b-nurture/analytics"),
        ("users", "/console/admin/users"),
        ("keys", "/console/admin/keys"),
    ]:
        page.goto(served.base + path)
        assert page.evaluate(UNLABELLED) == [], name
        # Wide content (the diagram, tables) scrolls in its own box; the page never does.
        assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"], name
        shot(page, artifacts_dir, f"tablet-{name}")
