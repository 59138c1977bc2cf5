"""The migrations build exactly the schema the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from services.audit.models import Base
from services.shared.db import Database
from services.shared.migrations import upgrade


def test_a_migrated_database_matches_the_models(audit_url: str) -> None:
    db = Database(audit_url)
    try:
        upgrade(db, "services.audit:migrations")
        upgrade(db, "services.audit:migrations")  # a second start changes nothing
        with db.engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
            )
            tables = set(inspect(connection).get_table_names())
    finally:
        db.dispose()

    assert differences == []
    assert {"audit_events", "audit_event_organizations", "alembic_version"} <= tables
