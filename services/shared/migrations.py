"""Alembic migrations, applied on start-up by each service to its own database."""

from __future__ import annotations

import zlib

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text

from services.shared.db import Database

__all__ = ["run_env", "upgrade"]


def upgrade(db: Database, script_location: str) -> None:
    """Bring the database to the newest revision of script_location ("pkg:dir")."""
    config = Config()
    config.set_main_option("script_location", script_location)
    # On SQLite, BEGIN IMMEDIATE serializes processes migrating one file at once.
    engine = db.engine.execution_options(sqlite_begin="IMMEDIATE") if db.is_sqlite else db.engine
    with engine.begin() as connection:
        if not db.is_sqlite:
            # Replicas starting together migrate one at a time.
            key = zlib.crc32(script_location.encode())
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


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
