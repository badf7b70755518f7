"""The data model (SQLAlchemy 2 typed ORM).

Times are aware UTC datetimes (stored naive UTC, see `db.UTCDateTime`). Rows that
the engine treats as history (events, funnel versions, stage moves, message
attempts, the consent ledger) are only ever inserted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base

# Message statuses. `scheduled` and `deferred` are waiting; `sending` is claimed by a
# worker; the rest are final.
WAITING = ("scheduled", "deferred")
# Statuses that count against caps: the email went out, or may have.
COUNTED = ("sending", "sent", "unknown")
FINAL = ("sent", "failed", "suppressed", "cancelled", "skipped", "unknown")

# The predicates of the partial indexes. Queries must use these same literal
# clauses: with `status IN (?, ?)` bound as parameters, neither SQLite nor a
# PostgreSQL generic plan can prove the index applies, and they scan instead.
DUE = text("messages.status IN ('scheduled', 'deferred')")
TIMEOUT_PENDING = text("enrollments.status = 'active' AND enrollments.timeout_at IS NOT NULL")
SENDING = text("messages.status = 'sending'")
_due = text("status IN ('scheduled', 'deferred')")
_active = text("status = 'active'")
_timeout = text("status = 'active' AND timeout_at IS NOT NULL")
_from_email = text("message_id IS NOT NULL")


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16))
    # active | unsubscribed | bounced | complained
    status: Mapped[str] = mapped_column(String(16), default="active")
    # The recipient's own cap, in GLOBAL_CAPS syntax (e.g. "1/7d"), or None.
    frequency: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="contact", cascade="all, delete-orphan"
    )

    def topic_status(self, topic: str) -> str | None:
        for sub in self.subscriptions:
            if sub.topic == topic:
                return sub.status
        return None


class Subscription(Base):
    """A contact's state for one topic: subscribed, unsubscribed or pending."""

    __tablename__ = "subscriptions"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime]

    contact: Mapped[Contact] = relationship(back_populates="subscriptions")


class ConsentChange(Base):
    """The append-only consent ledger: one row per change, with who and where."""

    __tablename__ = "consent_ledger"
    __table_args__ = (
        Index("ix_consent_contact_at", "contact_id", "at"),
        # Analytics: opt-outs made through a link in an email, by time (few rows).
        Index(
            "ix_consent_from_email", "at", sqlite_where=_from_email, postgresql_where=_from_email
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))
    # None for the global status; a topic name for a subscription; "frequency".
    topic: Mapped[str | None] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(16))  # status | topic | frequency
    before: Mapped[str | None] = mapped_column(String(32))
    after: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    actor: Mapped[str | None] = mapped_column(String(320))
    message_id: Mapped[int | None] = mapped_column(Integer)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("contact_id", "client_id", name="uq_events_contact_client"),
        Index("ix_events_contact_occurred", "contact_id", "occurred_at"),
        Index("ix_events_type_occurred", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    client_id: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(32), default="api")


class Funnel(Base):
    __tablename__ = "funnels"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # draft (never published) | live | paused
    status: Mapped[str] = mapped_column(String(16), default="draft")
    live_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("funnel_versions.id", use_alter=True, name="fk_funnels_live_version")
    )
    # The editor's unpublished text, if any.
    draft_source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    live_version: Mapped[FunnelVersion | None] = relationship(
        foreign_keys=[live_version_id], post_update=True
    )


class _Versioned:
    """The columns of an immutable, numbered version of a definition (funnel, segment)."""

    number: Mapped[int]
    source: Mapped[str] = mapped_column(Text)
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(320))


class FunnelVersion(_Versioned, Base):
    """An immutable, validated definition; `definition` is the canonical JSON."""

    __tablename__ = "funnel_versions"
    __table_args__ = (UniqueConstraint("funnel_id", "number", name="uq_funnel_version_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    funnel_id: Mapped[int] = mapped_column(ForeignKey("funnels.id", ondelete="CASCADE"))


class Enrollment(Base):
    """One contact's journey through one funnel."""

    __tablename__ = "enrollments"
    __table_args__ = (
        # A contact has at most one active enrollment per funnel.
        Index(
            "uq_enrollments_active",
            "contact_id",
            "funnel_id",
            unique=True,
            sqlite_where=_active,
            postgresql_where=_active,
        ),
        # The tick's timeout scan reads only enrollments that have a timeout pending.
        Index(
            "ix_enrollments_timeout", "timeout_at", sqlite_where=_timeout, postgresql_where=_timeout
        ),
        Index("ix_enrollments_funnel_stage", "funnel_id", "status", "stage_key"),
        # A contact's journeys, whatever their status (ingest, the contacts API, segments).
        Index("ix_enrollments_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    funnel_id: Mapped[int] = mapped_column(ForeignKey("funnels.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("funnel_versions.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | exited
    stage_key: Mapped[str] = mapped_column(String(64))
    stage_entered_at: Mapped[datetime]
    # Counts stage entries; with the step index it names each email of each visit.
    visit: Mapped[int] = mapped_column(default=0)
    # The event that brought the contact into the current stage, for rendering.
    stage_event_id: Mapped[int | None] = mapped_column(Integer)
    timeout_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime]
    exited_at: Mapped[datetime | None]
    exit_label: Mapped[str | None] = mapped_column(String(64))


class StageMove(Base):
    """History of an enrollment: entry, every stage change, exit."""

    __tablename__ = "stage_moves"
    __table_args__ = (
        Index("ix_stage_moves_funnel_at", "funnel_id", "at"),
        Index("ix_stage_moves_contact", "contact_id", "at"),
        # Analytics: covers entries, moves and exits by day without reading the rows.
        Index(
            "ix_stage_moves_funnel_stats",
            "funnel_id",
            "at",
            "reason",
            "label",
            "from_stage",
            "to_stage",
            "version_id",
            "enrollment_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(Integer)
    funnel_id: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str | None] = mapped_column(String(64))
    # entry | event | timeout | exit | publish
    reason: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[int | None] = mapped_column(Integer)


class Message(Base):
    """One email for one step of one stage visit.

    (enrollment_id, visit, step) is unique, so a second row for the same step
    cannot exist; status moves one way: waiting -> sending -> final.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "visit", "step", name="uq_messages_step"),
        Index("ix_messages_due", "due_at", sqlite_where=_due, postgresql_where=_due),
        Index("ix_messages_contact_sent", "contact_id", "sent_at"),
        Index("ix_messages_enrollment_status", "enrollment_id", "status"),
        Index("ix_messages_funnel_status", "funnel_id", "status"),
        # Analytics (app.services.analytics): covering indexes, so counting a funnel's
        # sends, suppressions, failures and deferrals by day never reads the rows.
        Index("ix_messages_funnel_sent", "funnel_id", "sent_at", "status"),
        Index(
            "ix_messages_funnel_due",
            "funnel_id",
            "due_at",
            "status",
            "created_at",
            "version_id",
            "stage_key",
            "step",
        ),
        Index(
            "ix_messages_sending",
            "claimed_at",
            sqlite_where=text("status = 'sending'"),
            postgresql_where=text("status = 'sending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    funnel_id: Mapped[int] = mapped_column(ForeignKey("funnels.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("funnel_versions.id"))
    stage_key: Mapped[str] = mapped_column(String(64))
    visit: Mapped[int]
    step: Mapped[int]
    template: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(default=0)
    event_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    first_attempt_at: Mapped[datetime | None]
    # Why it is deferred, suppressed, cancelled or failed, in plain words.
    reason: Mapped[str | None] = mapped_column(String(500))


class MessageAttempt(Base):
    """Every delivery attempt of a message and what came of it."""

    __tablename__ = "message_attempts"
    __table_args__ = (Index("ix_attempts_message", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # sent | retry | failed | bounced | unknown
    code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(1000))
    worker: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16), default="editor")  # admin | editor
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]

    # Flask-Login's protocol.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


class ApiKey(Base):
    """An API key; only its SHA-256 is stored (keys are long and random, so a fast
    hash is enough and lets every request find its key by an indexed lookup)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class WorkerHeartbeat(Base):
    """One row per worker process: operators see live workers and their last tick."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    last_tick_at: Mapped[datetime | None]
    last_tick_ms: Mapped[int | None]
    last_report: Mapped[dict[str, Any] | None]


class TrackingHit(Base):
    """One request for a tracked link (`click`) or open pixel (`open`) of a message.

    Every hit is kept, human or not: `bot` marks mail scanners and link checkers
    (with the `reason`), which are counted apart and never become events. A human
    hit is also ingested as an `email_clicked` / `email_opened` event (`event_id`).
    """

    __tablename__ = "tracking_hits"
    __table_args__ = (
        # Covers the analytics counts (unique openers and clickers by day).
        Index(
            "ix_tracking_hits_funnel_at",
            "funnel_id",
            "at",
            "bot",
            "kind",
            "contact_id",
            "version_id",
        ),
        Index("ix_tracking_hits_message_at", "message_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(Integer)
    funnel_id: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # click | open
    url: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
    bot: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[int | None] = mapped_column(Integer)


# --- Segments (migration 0003) ------------------------------------------------------

_check_due = text("due_at IS NOT NULL")


class Segment(Base):
    """A saved segment; its definitions are versioned like funnels'."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # draft (never published) | live
    status: Mapped[str] = mapped_column(String(16), default="draft")
    live_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("segment_versions.id", use_alter=True, name="fk_segments_live_version")
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    live_version: Mapped[SegmentVersion | None] = relationship(
        foreign_keys=[live_version_id], post_update=True
    )


class SegmentVersion(_Versioned, Base):
    """An immutable, validated segment definition (`definition`: its canonical JSON)."""

    __tablename__ = "segment_versions"
    __table_args__ = (UniqueConstraint("segment_id", "number", name="uq_segment_version_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))


class SegmentMember(Base):
    """A contact in a segment now, since when. Leaving deletes the row; the history
    is in `segment_changes`."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_contact", "contact_id"),)

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    since: Mapped[datetime]


class SegmentChange(Base):
    """Every time a contact joined or left a segment, and why (append-only)."""

    __tablename__ = "segment_changes"
    __table_args__ = (
        Index("ix_segment_changes_segment_at", "segment_id", "at"),
        Index("ix_segment_changes_contact_at", "contact_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    change: Mapped[str] = mapped_column(String(8))  # joined | left
    # event | time | update (attributes, consent, funnels) | publish
    reason: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[int | None] = mapped_column(Integer)


class SegmentCheck(Base):
    """When a contact's segments must be looked at again: the earliest moment a
    time-based condition can change (`due_at`), or now, when something about them
    changed outside an event. The tick reads only the due rows (partial index)."""

    __tablename__ = "segment_checks"
    __table_args__ = (
        Index(
            "ix_segment_checks_due", "due_at", sqlite_where=_check_due, postgresql_where=_check_due
        ),
    )

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    due_at: Mapped[datetime | None]
    # Why it is due: time (a window edge passes), update (attributes, consent or a
    # funnel move outside an event), publish (a segment definition changed).
    reason: Mapped[str | None] = mapped_column(String(16))
    checked_at: Mapped[datetime | None]  # the moment the memberships are as of
