"""Verbs for segment tests: load definitions, read memberships and their history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Contact, SegmentChange, SegmentMember
from app.services import segments as segments_svc
from app.services.segment_membership import refresh
from tests.helpers import ROOT

SEGMENTS = ROOT / "segments"


def load_segment(sessions: sessionmaker[Session], source: str | Path, now: datetime) -> int:
    """Validate, save and publish a segment (text or file); its id."""
    text = source.read_text() if isinstance(source, Path) else source
    with sessions.begin() as s:
        segment, _, _ = segments_svc.load_text(s, text, now, segments_svc.context(s))
        return segment.id


def bring_up_to_date(sessions: sessionmaker[Session], now: datetime) -> int:
    """What the tick does for segments (without sending anything)."""
    return refresh(sessions, now)


def members(sessions: sessionmaker[Session], segment_id: int) -> dict[str, datetime]:
    """Email -> member since."""
    with sessions() as s:
        rows = s.execute(
            select(Contact.email, SegmentMember.since)
            .join(Contact, Contact.id == SegmentMember.contact_id)
            .where(SegmentMember.segment_id == segment_id)
        ).all()
    return {email: since for email, since in rows}


def history(sessions: sessionmaker[Session], email: str) -> list[tuple[str, datetime, str]]:
    """(joined|left, at, reason) for one contact, in order."""
    with sessions() as s:
        rows = s.execute(
            select(SegmentChange.change, SegmentChange.at, SegmentChange.reason)
            .join(Contact, Contact.id == SegmentChange.contact_id)
            .where(Contact.email == email)
            .order_by(SegmentChange.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]
