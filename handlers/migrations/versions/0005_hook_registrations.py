"""hook registrations: the hooks the deployment's workers loaded, per eventType, last seen when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Creates one new, empty table: no existing row is read or rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hook_registrations",
        sa.Column("hook_name", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hook_name", "event_type"),
    )
    op.create_index(
        "ix_hook_registrations_type_seen", "hook_registrations", ["event_type", "last_seen_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_hook_registrations_type_seen", table_name="hook_registrations")
    op.drop_table("hook_registrations")
