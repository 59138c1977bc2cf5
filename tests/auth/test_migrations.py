"""The auth migrations build exactly what models.py declares, and come down again."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from services.auth.models import Base
from services.auth.wiring import MIGRATIONS
from services.shared.db import Database
from services.shared.migrations import upgrade


def test_migrated_database_matches_the_models(new_database_url: Callable[[str], str]) -> None:
    db = Database(new_database_url("auth"))
    try:
        upgrade(db, MIGRATIONS)
        upgrade(db, MIGRATIONS)  # a second start finds nothing to do
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            checks = {
                table: {c["name"] for c in inspect(connection).get_check_constraints(table)}
                for table in ("organizations", "users")
            }
    finally:
        db.dispose()

    assert differences == []
    # Autogenerate does not compare CHECK constraints; the enum columns carry one each.
    assert checks == {
        "organizations": {"ck_organizations_organization_type"},
        "users": {"ck_users_user_role"},
    }


def test_downgrade_removes_every_table(new_database_url: Callable[[str], str]) -> None:
    db = Database(new_database_url("auth"))
    try:
        upgrade(db, MIGRATIONS)
        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        with db.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    finally:
        db.dispose()

    assert tables == {"alembic_version"}
