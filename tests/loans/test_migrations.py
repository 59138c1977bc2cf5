"""The loans migrations build exactly what models.py declares, and come down again."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from services.loans.models import Base
from services.shared.db import Database
from services.shared.migrations import upgrade

MIGRATIONS = "services.loans:migrations"


def test_migrated_database_matches_the_models(new_database_url: Callable[[str], str]) -> None:
    db = Database(new_database_url("loans"))
    try:
        upgrade(db, MIGRATIONS)
        upgrade(db, MIGRATIONS)  # a second start finds nothing to do
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        db.dispose()

    assert differences == []
    assert tables == {*Base.metadata.tables, "alembic_version"}


def test_downgrade_removes_every_table(new_database_url: Callable[[str], str]) -> None:
    db = Database(new_database_url("loans"))
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
