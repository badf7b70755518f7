"""The queries the worker runs. Each claim is atomic and says which race it closes.

On PostgreSQL `FOR UPDATE SKIP LOCKED` lets many workers claim disjoint rows; SQLite
ignores the clause and relies on its single writer (one worker on SQLite).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from app.models import COUNTED, DUE, SENDING, TIMEOUT_PENDING, Contact, Enrollment, Message


def claim_due_timeouts(session: Session, now: datetime, limit: int) -> Sequence[Enrollment]:
    """Active enrollments whose time-based transition is due, oldest first.

    SKIP LOCKED: two workers never fire the same timeout (the second skips the row).
    """
    return session.scalars(
        select(Enrollment)
        .where(TIMEOUT_PENDING, Enrollment.timeout_at <= now)
        .order_by(Enrollment.timeout_at, Enrollment.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def claim_due(session: Session, now: datetime, limit: int) -> Sequence[Message]:
    """Due messages, higher priority first, then oldest due.

    SKIP LOCKED: a message row locked by another worker's claim is skipped, so no two
    workers decide about the same message; the status change to `sending` in the
    same transaction keeps it from being claimed again after the commit.
    """
    return session.scalars(
        select(Message)
        .where(DUE, Message.due_at <= now)
        .order_by(Message.priority.desc(), Message.due_at, Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def lock_contacts(session: Session, ids: set[int]) -> dict[int, Contact]:
    """Lock the contacts (in id order, so two workers cannot deadlock) while caps are
    checked and sends recorded: a second worker with mail for the same contact waits,
    then sees the first one's `sending` rows in its cap count."""
    rows = session.scalars(
        select(Contact)
        .where(Contact.id.in_(ids))
        .order_by(Contact.id)
        .options(selectinload(Contact.subscriptions))
        .with_for_update(of=Contact)
    ).all()
    return {c.id: c for c in rows}


def recent_sends(
    session: Session, contact_ids: set[int], since: datetime
) -> dict[int, list[datetime]]:
    """Send times per contact since `since`, across all funnels (what caps count)."""
    found: dict[int, list[datetime]] = defaultdict(list)
    rows = session.execute(
        select(Message.contact_id, Message.sent_at).where(
            Message.contact_id.in_(contact_ids),
            Message.status.in_(COUNTED),
            Message.sent_at > since,
        )
    )
    for contact_id, sent_at in rows:
        found[contact_id].append(sent_at)
    return found


def active_enrollments(session: Session, ids: set[int]) -> dict[int, Enrollment]:
    rows = session.scalars(select(Enrollment).where(Enrollment.id.in_(ids)))
    return {e.id: e for e in rows}


def stale_sending(session: Session, older_than: datetime, limit: int) -> Sequence[Message]:
    """Messages a worker claimed and never confirmed (it crashed or was killed)."""
    return session.scalars(
        select(Message)
        .where(SENDING, Message.claimed_at < older_than)
        .order_by(Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def confirm(session: Session, message_id: int, worker: str, **values: object) -> bool:
    """Set a claimed message's outcome, only if this worker's claim still stands."""
    result = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == "sending", Message.claimed_by == worker)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def confirm_sent(session: Session, ids: Sequence[int], worker: str, now: datetime) -> list[int]:
    """Mark delivered messages `sent` in one statement; the ids whose claim still stood."""
    if not ids:
        return []
    result = session.execute(
        update(Message)
        .where(Message.id.in_(ids), Message.status == "sending", Message.claimed_by == worker)
        .values(status="sent", sent_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return [row[0] for row in result]
