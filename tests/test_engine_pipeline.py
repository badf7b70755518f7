"""A tick delivers one batch while it claims the next: every batch's outcome is still
recorded, in order, even when claiming the next one fails."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app import queries
from tests.conftest import at
from tests.helpers import ROOT, event, messages, publish, run, subscribe

FUNNEL = ROOT / "funnels" / "b2b-nurture.yaml"
READERS = [f"reader{i}@example.com" for i in range(5)]
START = at("2026-03-02 10:00")  # a Monday, inside the send window


def enrol_readers(sessions):
    publish(sessions, FUNNEL, START)
    for reader in READERS:
        subscribe(sessions, reader, START, timezone="Europe/London")
        event(sessions, reader, "ebook_downloaded", START, ebook="seven-fundamentals")


def test_it_sends_every_batch_through_the_pipeline(sessions, settings, smtp_sink):
    enrol_readers(sessions)
    report = run(sessions, replace(settings, batch=2), START, sink=smtp_sink)
    assert report.counts["sent"] == 5
    welcomes = [m for m in messages(sessions) if m.template == "ebook-welcome"]
    assert [m.status for m in welcomes] == ["sent"] * 5
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.wait_for(5)) == READERS


def test_it_records_the_batch_on_the_wire_when_the_next_claim_fails(
    sessions, settings, smtp_sink, monkeypatch
):
    enrol_readers(sessions)
    claims = []
    real_claim = queries.claim_due

    def failing_second_claim(session, now, limit):
        claims.append(limit)
        if len(claims) == 2:
            raise RuntimeError("the database went away")
        return real_claim(session, now, limit)

    monkeypatch.setattr(queries, "claim_due", failing_second_claim)
    with pytest.raises(RuntimeError, match="went away"):
        run(sessions, replace(settings, batch=2), START, sink=smtp_sink)
    welcomes = [m for m in messages(sessions) if m.template == "ebook-welcome"]
    # The first batch went out and is recorded sent, not left `sending` for recovery.
    assert sorted(m.status for m in welcomes) == ["scheduled"] * 3 + ["sent"] * 2
    assert len(smtp_sink.wait_for(2)) == 2
