"""Alembic migrations, applied on start-up by each service to its own database."""

from __future__ import annotations

import zlib

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text

from services.shared.db import Database

__all__ = ["run_env", "upgrade"]


def upgrade(db: Database, script_location: str) -> None:
    """Bring the database to the newest revision of script_location ("pkg:dir")."""
    config = Config()
    config.set_main_option("script_location", script_location)
    # On SQLite, BEGIN IMMEDIATE serializes processes migrating one file at once.
    engine = db.engine.execution_options(sqlite_begin="IMMEDIATE") if db.is_sqlite else db.engine
    with engine.connect() as connection:
        if db.is_sqlite:
            # A batch migration recreates a table: with foreign keys on, dropping the old
            # copy would cascade-delete every child row. SQLite ignores this pragma inside
            # a transaction, so it is set before BEGIN, on the driver's connection.
            _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                if not db.is_sqlite:
                    # Replicas starting together migrate one at a time.
                    key = zlib.crc32(script_location.encode())
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if db.is_sqlite:
                    _check_foreign_keys(connection)
        finally:
            if db.is_sqlite:
                _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    driver_connection.execute(pragma)


def _check_foreign_keys(connection: Connection) -> None:
    """Refuse to commit a migration that left a row pointing at nothing."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
