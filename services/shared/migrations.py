"""Alembic migrations, applied on start-up by each service to its own database.

Each service records its revision in a version table of its own
(``alembic_version_<service>``), so the three services may share one database:
with one ``alembic_version`` table, the second service to start read the first
one's revision as its own and skipped the migrations that build its tables.
A database from before that change is adopted on its next start: the service
whose tables it holds moves its revision from ``alembic_version`` to its own
table, in the migration's transaction.
"""

from __future__ import annotations

import logging
import zlib

# Alembic logs at INFO a line per plugin as it is imported and a few per migration run,
# which opened every start; quiet unless a level was set on purpose. Warnings still show,
# and run_env says in one line what was migrated.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect, text

from services.shared.db import Database

__all__ = ["LEGACY_VERSION_TABLE", "run_env", "upgrade", "version_table"]

LEGACY_VERSION_TABLE = "alembic_version"
# One lock for every service's migrations: on a shared database, the services
# starting together migrate one at a time, adoption of the legacy table included.
# (Advisory locks are per database, so services on separate databases never wait.)
_LOCK_KEY = zlib.crc32(b"loansuite migrations")

_log = logging.getLogger("loansuite.migrations")


def version_table(service: str) -> str:
    """The table in which a service records its revision."""
    return f"alembic_version_{service}"


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
                    # Replicas and services starting together migrate one at a time.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
                    )
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


def run_env(target_metadata: MetaData, *, service: str, own_table: str) -> None:
    """The body of every service's migrations/env.py.

    own_table is a table that only this service has had since its first revision:
    its presence says that a legacy ``alembic_version`` row is this service's.
    """
    connection: Connection = context.config.attributes["connection"]
    table = version_table(service)
    _adopt_legacy_version(connection, context.script, table=table, own_table=own_table)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table=table,
    )
    before = context.get_context().get_current_heads()
    with context.begin_transaction():
        context.run_migrations()
    after = context.get_context().get_current_heads()
    if after != before:
        _log.info(
            "database migrated",
            extra={
                "service": service,
                "from_revision": _shown(before),
                "to_revision": _shown(after),
            },
        )


def _shown(heads: tuple[str, ...]) -> str:
    return ",".join(heads) or "base"


def _adopt_legacy_version(
    connection: Connection, script: ScriptDirectory, *, table: str, own_table: str
) -> None:
    """Move this service's revision from the shared legacy table to its own, once."""
    tables = set(inspect(connection).get_table_names())
    if table in tables or LEGACY_VERSION_TABLE not in tables or own_table not in tables:
        return
    known = {revision.revision for revision in script.walk_revisions()}
    rows = connection.execute(text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}"))  # noqa: S608
    revisions = [revision for (revision,) in rows if revision in known]
    if not revisions:
        return
    own = MigrationContext.configure(connection, opts={"version_table": table})
    for revision in revisions:
        own.stamp(script, revision)
    for revision in revisions:
        connection.execute(
            text(f"DELETE FROM {LEGACY_VERSION_TABLE} WHERE version_num = :revision"),  # noqa: S608
            {"revision": revision},
        )
    if connection.execute(text(f"SELECT count(*) FROM {LEGACY_VERSION_TABLE}")).scalar() == 0:  # noqa: S608
        connection.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
    _log.info(
        "version table adopted",
        extra={
            "from_table": LEGACY_VERSION_TABLE,
            "to_table": table,
            "revision": ",".join(revisions),
        },
    )
