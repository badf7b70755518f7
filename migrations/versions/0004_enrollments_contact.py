"""enrollments: an index on contact_id, for reading a contact's journeys

The partial unique index on (contact_id, funnel_id) covers active enrollments only, so
reading all of a contact's journeys (event ingestion, the contacts API, segment facts)
scanned the table: 49 ms against 6 ms for 400,000 enrollments on SQLite.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_enrollments_contact", "enrollments", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_enrollments_contact", table_name="enrollments")
