"""appointment reference ids: subject, office, listing and lead segment as columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ("subject_id", "office_id", "listing_id", "lead_segment_id")
INDEXED = ("subject_id", "office_id", "listing_id")
SNAPSHOT_KEYS = {
    "subject_id": "subject",
    "office_id": "office",
    "listing_id": "listing",
    "lead_segment_id": "leadSegment",
}


def upgrade() -> None:
    # batch mode: SQLite cannot alter tables in place; on PostgreSQL it is plain ALTER TABLE.
    with op.batch_alter_table("appointments") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=255), nullable=True))
        for name in INDEXED:
            batch.create_index(f"ix_appointments_{name}", [name], unique=False)
    _backfill()


def _backfill() -> None:
    """Fill the new columns of rows stored before this revision from their snapshot."""
    appointments = sa.table(
        "appointments",
        sa.column("id", sa.String),
        sa.column("snapshot", sa.JSON),
        *(sa.column(name, sa.String) for name in COLUMNS),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(appointments.c.id, appointments.c.snapshot)).all()
    for row_id, snapshot in rows:
        values = {name: _ref_id((snapshot or {}).get(key)) for name, key in SNAPSHOT_KEYS.items()}
        bind.execute(appointments.update().where(appointments.c.id == row_id).values(**values))


def _ref_id(value):
    if isinstance(value, dict) and value.get("id") is not None:
        return str(value["id"])[:255]
    return None


def downgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        for name in INDEXED:
            batch.drop_index(f"ix_appointments_{name}")
        for name in COLUMNS:
            batch.drop_column(name)
