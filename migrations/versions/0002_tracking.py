"""click and open tracking; indexes for funnel analytics

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FROM_EMAIL = sa.text("message_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "tracking_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("funnel_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("at", app.db.UTCDateTime(), nullable=False),
        sa.Column("bot", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    # Plain CREATE INDEX works on SQLite too: no table copy (batch mode) is needed.
    op.create_index(
        "ix_tracking_hits_funnel_at",
        "tracking_hits",
        ["funnel_id", "at", "bot", "kind", "contact_id", "version_id"],
    )
    op.create_index("ix_tracking_hits_message_at", "tracking_hits", ["message_id", "at"])
    # Covering indexes for the analytics counts (app.services.analytics).
    op.create_index("ix_messages_funnel_sent", "messages", ["funnel_id", "sent_at", "status"])
    op.create_index(
        "ix_messages_funnel_due",
        "messages",
        ["funnel_id", "due_at", "status", "created_at", "version_id", "stage_key", "step"],
    )
    op.create_index(
        "ix_stage_moves_funnel_stats",
        "stage_moves",
        [
            "funnel_id",
            "at",
            "reason",
            "label",
            "from_stage",
            "to_stage",
            "version_id",
            "enrollment_id",
        ],
    )
    op.create_index(
        "ix_consent_from_email",
        "consent_ledger",
        ["at"],
        sqlite_where=FROM_EMAIL,
        postgresql_where=FROM_EMAIL,
    )


def downgrade() -> None:
    op.drop_index("ix_consent_from_email", table_name="consent_ledger")
    op.drop_index("ix_stage_moves_funnel_stats", table_name="stage_moves")
    op.drop_index("ix_messages_funnel_due", table_name="messages")
    op.drop_index("ix_messages_funnel_sent", table_name="messages")
    op.drop_index("ix_tracking_hits_message_at", table_name="tracking_hits")
    op.drop_index("ix_tracking_hits_funnel_at", table_name="tracking_hits")
    op.drop_table("tracking_hits")
