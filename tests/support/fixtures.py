"""Pytest fixtures shared by the whole suite (a plugin: tests/conftest.py lists it in
``pytest_plugins``).

- ``smtp_sink``: a fresh SMTP server on loopback per test (tests.support.smtp).
- ``pg_server_url`` / ``pg_database``: the PostgreSQL server from TEST_PG_URL and a
  fresh empty database on it per test.
- ``chromium_browser`` / ``page``: Debian's Chromium driven by playwright; a failing
  test using ``page`` leaves a screenshot and the page HTML in its artifacts directory.
- ``artifacts_dir``: test-artifacts/<test name>/, for anything worth keeping from a run.

Missing servers skip the tests that need them on a developer's machine, and fail them
when CI is set, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# skip_or_fail is re-exported for older imports; import it from tests.support.ci.
from tests.support.ci import skip_or_fail as skip_or_fail
from tests.support.pg import drop_database, fresh_database, pg_url
from tests.support.smtp import SmtpSink

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
# The browser must come from Debian's package: `playwright install` downloads are not
# possible on the CI machine. --no-sandbox because CI runs as root, where Chromium's
# sandbox refuses to start; the rest keep a headless run quiet and offline.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


# -- SMTP -------------------------------------------------------------------------


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SmtpSink on 127.0.0.1, stopped after the test."""
    with SmtpSink() as sink:
        yield sink


# -- PostgreSQL -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The URL in TEST_PG_URL (`make test` sets it); skips the test when unset."""
    url = pg_url()
    if url is None:
        skip_or_fail("TEST_PG_URL is not set: no PostgreSQL server (run `make test`)")
    return url


@pytest.fixture
def pg_database(pg_server_url: str) -> Iterator[str]:
    """The URL of a new empty database, dropped after the test."""
    url = fresh_database(pg_server_url)
    try:
        yield url
    finally:
        drop_database(url)


# -- Artifacts --------------------------------------------------------------------


def _artifacts_path(item: pytest.Item) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name).strip("_")
    return Path(item.config.rootpath) / "test-artifacts" / safe


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """test-artifacts/<test name>/, created when a test asks for it."""
    path = _artifacts_path(request.node)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Keep each phase's report on the item so fixtures can tell, at teardown,
    # whether the test itself failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# -- Browser ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Browser]:
    """Headless Chromium from /usr/bin/chromium, shared by the whole session."""
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(
            f"{CHROMIUM} not found (Debian package `chromium`; see scripts/system-deps.sh)"
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(chromium_browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies shared between tests).

    When the test fails, its screenshot and HTML go to test-artifacts/<test name>/.
    """
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            path = _artifacts_path(request.node)
            path.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(path / "failure.png"), full_page=True)
                (path / "failure.html").write_text(page.content(), encoding="utf-8")
            except Exception as error:  # the page may be what broke; keep the real failure
                (path / "artifact-error.txt").write_text(repr(error), encoding="utf-8")
        context.close()
