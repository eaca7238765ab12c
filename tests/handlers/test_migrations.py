"""Alembic migrations of the store: up, down, backfill, and no drift from the models."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy import text

from handlers.migrate import alembic_config
from handlers.migrate import upgrade
from handlers.models import Base
from handlers.store import Store


@pytest.fixture
def bare_store(store_url):
    """A store on each backend with no schema yet."""
    store = Store(store_url)
    yield store
    store.engine.dispose()


def downgrade(store: Store, revision: str) -> None:
    with store.engine.begin() as connection:
        config = alembic_config(store.url)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def revision(store: Store) -> str:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def appointment_columns(store: Store) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns("appointments")}


SNAPSHOT = {
    "id": "a-1",
    "status": "ACCEPTED",
    "subject": {"id": "s-1"},
    "office": {"id": "o-1"},
    "listing": None,
    "leadSegment": {"id": 42},
}


class TestMigrations:
    def test_head_creates_every_table_and_matches_the_models(self, bare_store):
        bare_store.migrate()
        assert revision(bare_store) == "0005"
        with bare_store.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diffs == []

    def test_migrating_again_changes_nothing(self, bare_store):
        bare_store.migrate()
        bare_store.migrate()
        assert revision(bare_store) == "0005"

    def test_upgrade_from_0001_fills_reference_ids_from_stored_snapshots(self, bare_store):
        upgrade(bare_store.engine, "0001")
        with bare_store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO appointments (id, status, updated_at, snapshot, last_event_id, "
                    "last_event_type, first_seen_at, last_applied_at) VALUES ('a-1', 'ACCEPTED', "
                    ":now, :snapshot, 'e-1', 'CREATE', :now, :now)"
                ),
                {"now": "2024-10-01 08:00:00+00:00", "snapshot": json.dumps(SNAPSHOT)},
            )
        bare_store.migrate()
        with bare_store.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT subject_id, office_id, listing_id, lead_segment_id "
                    "FROM appointments WHERE id = 'a-1'"
                )
            ).one()
        assert tuple(row) == ("s-1", "o-1", None, "42")

    def test_downgrade_to_0001_removes_the_columns_and_upgrade_restores_them(self, bare_store):
        bare_store.migrate()
        downgrade(bare_store, "0001")
        assert revision(bare_store) == "0001"
        assert "office_id" not in appointment_columns(bare_store)
        bare_store.migrate()
        assert {"subject_id", "office_id", "listing_id", "lead_segment_id"} <= (
            appointment_columns(bare_store)
        )
