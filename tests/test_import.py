"""`flask contacts import FILE.csv`: bad rows reported by line, safe to run twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import importer
from app.models import ConsentChange, Contact
from app.services import contacts as contacts_svc
from tests.conftest import at

GOOD_AND_BAD = """\
email,first_name,timezone,plan
ada@example.com,Ada,Europe/London,pro
not-an-address,Bob,,
cy@example.com,"Cy
with a line break",,basic
dee@example.com,Dee,Mars/Olympus,
EVE@Example.com,Eve,,
"""


def write(tmp_path: Path, text: str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_import(app, path: Path, *options: str):
    return app.test_cli_runner().invoke(args=["contacts", "import", str(path), *options])


def contacts(sessions) -> dict[str, Contact]:
    with sessions() as s:
        return {
            c.email: c
            for c in s.scalars(select(Contact).options(selectinload(Contact.subscriptions)))
        }


def ledger_count(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(ConsentChange))


def test_it_imports_the_good_rows_and_reports_each_bad_one_with_its_line(app, sessions, tmp_path):
    path = write(tmp_path, GOOD_AND_BAD)
    result = run_import(app, path)
    assert result.exit_code == 1  # some rows were bad
    assert f"{path}:3: email 'not-an-address':" in result.output
    assert "@-sign" in result.output  # email-validator's reason
    assert f"{path}:6: timezone: 'Mars/Olympus' is not a time zone name" in result.output
    assert "5 rows" in result.output and "3 created" in result.output and "2 bad" in result.output
    imported = contacts(sessions)
    assert sorted(imported) == ["ada@example.com", "cy@example.com", "eve@example.com"]
    ada = imported["ada@example.com"]
    assert (ada.attributes, ada.timezone) == ({"first_name": "Ada", "plan": "pro"}, "Europe/London")
    assert imported["cy@example.com"].attributes["first_name"] == "Cy\nwith a line break"


def test_it_creates_nothing_twice_when_run_twice(app, sessions, tmp_path):
    path = write(tmp_path, GOOD_AND_BAD)
    run_import(app, path)
    before = {e: (c.id, c.updated_at) for e, c in contacts(sessions).items()}
    second = run_import(app, path)
    assert "0 created, 0 updated, 3 unchanged" in second.output
    assert {e: (c.id, c.updated_at) for e, c in contacts(sessions).items()} == before


def test_it_updates_what_changed(app, sessions, tmp_path):
    run_import(app, write(tmp_path, "email,first_name,plan\nada@example.com,Ada,pro\n"))
    result = run_import(app, write(tmp_path, "email,plan,locale\nada@example.com,team,en-GB\n"))
    assert result.exit_code == 0 and "1 updated" in result.output
    ada = contacts(sessions)["ada@example.com"]
    assert (ada.attributes, ada.locale) == ({"first_name": "Ada", "plan": "team"}, "en-GB")


def test_it_subscribes_to_a_topic_once_with_the_consent_source(app, sessions, tmp_path):
    path = write(tmp_path, GOOD_AND_BAD)
    first = run_import(app, path, "--topic", "nurture", "--consent-source", "webinar-2026")
    assert "3 subscribed to nurture" in first.output
    run_import(app, path, "--topic", "nurture", "--consent-source", "webinar-2026")
    with sessions() as s:
        rows = list(s.scalars(select(ConsentChange)))
    assert len(rows) == 3
    assert {(r.source, r.topic, r.before, r.after) for r in rows} == {
        ("webinar-2026", "nurture", None, "subscribed")
    }
    assert all(r.actor == "import contacts.csv" for r in rows)


def test_it_leaves_a_contact_who_opted_out_as_they_chose(app, sessions, tmp_path):
    now = at("2026-03-01 12:00")
    with sessions.begin() as s:
        contact, _ = contacts_svc.get_or_create(s, "ada@example.com", now)
        contacts_svc.set_topic(
            s, contact, "nurture", "unsubscribed", now, contacts_svc.Actor(source="preferences")
        )
    result = run_import(app, write(tmp_path, "email\nada@example.com\n"), "--topic", "nurture")
    assert "0 subscribed to nurture; 1 left as they chose" in result.output
    assert contacts(sessions)["ada@example.com"].topic_status("nurture") == "unsubscribed"
    assert ledger_count(sessions) == 1


def test_it_works_through_many_batches_and_repeated_addresses(app, sessions, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "BATCH", 7)
    lines = [f"p{i % 40}@example.com,Name {i}" for i in range(100)]  # each address 2-3 times
    result = run_import(app, write(tmp_path, "email,first_name\n" + "\n".join(lines) + "\n"))
    assert result.exit_code == 0, result.output
    imported = contacts(sessions)
    assert len(imported) == 40
    assert imported["p0@example.com"].attributes["first_name"] == "Name 80"  # the last row wins


def test_it_shows_progress_in_rows_per_second(app, tmp_path):
    result = run_import(app, write(tmp_path, "email\nada@example.com\n"))
    assert "rows/s" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,first_name\nada,Ada\n", "header with an `email` column"),
        ("", "header with an `email` column"),
    ],
)
def test_it_refuses_a_file_without_an_email_column(app, sessions, tmp_path, text, message):
    result = run_import(app, write(tmp_path, text))
    assert result.exit_code != 0 and message in result.output
    assert contacts(sessions) == {}


def test_it_reports_extra_cells_and_nul_characters_by_line(app, sessions, tmp_path):
    text = (
        "email,first_name\nada@example.com,Ada,surplus\nbob@example.com,B\x00b\ncy@example.com,Cy\n"
    )
    result = run_import(app, write(tmp_path, text))
    assert ":2: 1 more cells than the header has columns" in result.output
    assert ":3: first_name: holds a NUL character" in result.output
    assert sorted(contacts(sessions)) == ["cy@example.com"]


def test_it_stops_cleanly_on_a_file_that_is_not_utf8(app, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,first_name\nzoe@example.com,Zoë\n".encode("latin-1"))
    result = run_import(app, path)
    assert result.exit_code == 1 and "is not UTF-8 text" in result.output


def test_it_refuses_a_double_opt_in_topic(db_url, tmp_path):
    from tests.conftest import make_test_app

    app = make_test_app(db_url, DOUBLE_OPT_IN_TOPICS=["newsletter"])
    try:
        result = run_import(
            app, write(tmp_path, "email\nada@example.com\n"), "--topic", "newsletter"
        )
        assert result.exit_code == 1 and "needs double opt-in" in result.output
    finally:
        app.extensions["nurture.engine"].dispose()
