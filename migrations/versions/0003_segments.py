"""segments: versions, members, joins and leaves, and when each contact is due

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
DUE = sa.text("due_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("live_version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_table(
        "segment_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("published_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("segment_id", "number", name="uq_segment_version_number"),
    )
    # The two tables point at each other; batch mode adds the key on SQLite too.
    with op.batch_alter_table("segments") as batch:
        batch.create_foreign_key(
            "fk_segments_live_version", "segment_versions", ["live_version_id"], ["id"]
        )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("since", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("segment_id", "contact_id"),
    )
    op.create_index("ix_segment_members_contact", "segment_members", ["contact_id"])
    op.create_table(
        "segment_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("at", app.db.UTCDateTime(), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_segment_changes_segment_at", "segment_changes", ["segment_id", "at"])
    op.create_index("ix_segment_changes_contact_at", "segment_changes", ["contact_id", "at"])
    op.create_table(
        "segment_checks",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("due_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("checked_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_index(
        "ix_segment_checks_due",
        "segment_checks",
        ["due_at"],
        sqlite_where=DUE,
        postgresql_where=DUE,
    )


def downgrade() -> None:
    op.drop_index("ix_segment_checks_due", table_name="segment_checks")
    op.drop_table("segment_checks")
    op.drop_index("ix_segment_changes_contact_at", table_name="segment_changes")
    op.drop_index("ix_segment_changes_segment_at", table_name="segment_changes")
    op.drop_table("segment_changes")
    op.drop_index("ix_segment_members_contact", table_name="segment_members")
    op.drop_table("segment_members")
    with op.batch_alter_table("segments") as batch:
        batch.drop_constraint("fk_segments_live_version", type_="foreignkey")
    op.drop_table("segment_versions")
    op.drop_table("segments")
