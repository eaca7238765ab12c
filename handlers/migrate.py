"""Apply the store's Alembic migrations from code: only `engagehook migrate` and `serve`'s start.

Every other command and role only reads the schema's revision (``schema_state``) and refuses
to run against a store that is behind, so an upgrade is always an operator's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 7_294_113


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to ``revision``; on PostgreSQL one process at a time (advisory lock)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            # Migrations are set-based statements over whole tables: on a million rows they
            # outlast the store's per-statement bound, which is meant for event processing.
            connection.execute(text("SET LOCAL statement_timeout = 0"))
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema stands against the migrations this engagehook ships."""

    current: str | None  # None: no engagehook schema at all
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def advice(self) -> str:
        """What the operator should do, or an empty string when nothing is needed."""
        if self.up_to_date:
            return ""
        if self.current is None:
            return "the store has no engagehook schema yet: run `engagehook migrate` first"
        return (
            f"the store's schema is at revision {self.current}, this engagehook needs "
            f"{self.head}: run `engagehook migrate`"
        )


def schema_state(engine: Engine) -> SchemaState:
    """Read the store's revision without changing anything (no migration, no table)."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    if head is None:  # the migrations ship with the package: a tree without them is broken
        raise RuntimeError("the store's migrations are missing: reinstall engagehook")
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return SchemaState(current=current, head=head)
