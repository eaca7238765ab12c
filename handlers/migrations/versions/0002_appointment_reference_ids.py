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
ID_LENGTH = 255


def upgrade() -> None:
    # batch mode: SQLite cannot alter tables in place; on PostgreSQL it is plain ALTER TABLE.
    with op.batch_alter_table("appointments") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=ID_LENGTH), nullable=True))
    _backfill()
    # Indexes after the backfill: built once over the filled columns, not updated row by row.
    for name in INDEXED:
        op.create_index(f"ix_appointments_{name}", "appointments", [name], unique=False)


def _backfill() -> None:
    """Fill the new columns of rows stored before this revision from their snapshot.

    One UPDATE with the JSON read in SQL: the rows never travel to Python, so a million
    appointments cost one table scan, not a million round trips and their snapshots in memory.
    A reference that is not an object, or has no id, gives NULL, as the store writes it.
    """
    dialect = op.get_bind().dialect.name
    assignments = ", ".join(
        f"{name} = {_reference_id_sql(dialect, key)}" for name, key in SNAPSHOT_KEYS.items()
    )
    op.execute(f"UPDATE appointments SET {assignments}")


def _reference_id_sql(dialect: str, key: str) -> str:
    """SQL for ``snapshot[key]["id"]`` as text cut to the column's length, NULL otherwise."""
    if dialect == "postgresql":
        # jsonb_typeof guards the -> on a scalar; ->> gives numbers as text, NULL for JSON null.
        return (
            f"CASE WHEN jsonb_typeof(snapshot -> '{key}') = 'object' "
            f"THEN left(snapshot -> '{key}' ->> 'id', {ID_LENGTH}) END"
        )
    # SQLite's JSON1: json_extract on a path that is not there (or not an object) is NULL.
    return (
        f"CASE WHEN json_type(snapshot, '$.{key}') = 'object' "
        f"THEN substr(CAST(json_extract(snapshot, '$.{key}.id') AS TEXT), 1, {ID_LENGTH}) END"
    )


def downgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        for name in INDEXED:
            batch.drop_index(f"ix_appointments_{name}")
        for name in COLUMNS:
            batch.drop_column(name)
