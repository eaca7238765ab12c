"""hook run leases: each attempt's claim expires, and a run keeps the state its event found

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Adds nullable columns only: one ALTER per column, no rows read or rewritten.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hook_runs") as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "prior_state",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("hook_runs") as batch:
        batch.drop_column("prior_state")
        batch.drop_column("lease_expires_at")
