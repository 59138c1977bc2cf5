"""One database for all three services, and databases from before each kept its own version.

Each service records its revision in ``alembic_version_<service>`` and names its
tables apart (auth's outbox is ``auth_outbox_events``), so auth, loans and audit can
share one PostgreSQL database or one SQLite file. A database whose revision sits
in the old shared ``alembic_version`` table is adopted on its next start.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

from services.audit import models as audit_models
from services.auth import models as auth_models
from services.loans import models as loans_models
from services.shared.db import Database
from services.shared.migrations import LEGACY_VERSION_TABLE, upgrade, version_table
from tests.e2e.support import loan_request
from tests.support import Databases, eventually, start_suite

LOCATIONS = {
    "auth": "services.auth:migrations",
    "loans": "services.loans:migrations",
    "audit": "services.audit:migrations",
}
METADATA = {
    "auth": auth_models.Base.metadata,
    "loans": loans_models.Base.metadata,
    "audit": audit_models.Base.metadata,
}


class OneDatabase(Databases):
    """Databases that hand every service the same one."""

    def __init__(self, backend: str, directory: Path) -> None:
        super().__init__(backend, directory)
        self.url = super().new("shared")

    def new(self, name: str) -> str:
        return self.url


@pytest.fixture
def shared(backend: str, tmp_path: Path) -> Iterator[OneDatabase]:
    databases = OneDatabase(backend, tmp_path)
    yield databases
    databases.drop_all()


def _head(service: str) -> str:
    config = Config()
    config.set_main_option("script_location", LOCATIONS[service])
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _versions(db: Database) -> dict[str, list[str]]:
    """Each version table's rows."""
    with db.engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        return {
            table: [row[0] for row in connection.execute(text(f"SELECT version_num FROM {table}"))]  # noqa: S608
            for table in tables
            if table.startswith(LEGACY_VERSION_TABLE)
        }


def _sql(db: Database, query: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(query))]


def _drained(db: Database, outbox: str) -> bool:
    query = f"SELECT count(*) FROM {outbox} WHERE delivered_time IS NULL"  # noqa: S608
    return _sql(db, query) == [(0,)]


def test_the_three_services_migrate_into_one_database_and_serve(
    shared: OneDatabase, tmp_path: Path
) -> None:
    db = Database(shared.url)
    try:
        for service in ("loans", "audit", "auth"):  # loans first: nobody's tables get in the way
            upgrade(db, LOCATIONS[service])
        assert _versions(db) == {version_table(s): [_head(s)] for s in LOCATIONS}
        running, servers = start_suite(shared.backend, tmp_path, shared)
        try:
            borrower = running.register("BORROWER")
            created = running.loans.CreateLoan(loan_request(), metadata=borrower.metadata)
            assert created.HasField("loan"), created.error
            actions = "SELECT DISTINCT action FROM audit_events"

            def both_delivered() -> bool:
                seen = {row[0] for row in _sql(db, actions)}
                return {"USER_REGISTERED", "LOAN_CREATED"} <= seen

            eventually(both_delivered, "auth's and loans' events in the shared audit log")
            for outbox in ("auth_outbox_events", "outbox_events"):
                eventually(partial(_drained, db, outbox), f"{outbox} delivered")
        finally:
            for channel in running.channels.values():
                channel.close()
            for server in servers:
                server.stop(0)
    finally:
        db.dispose()


def _make_legacy(db: Database, service: str) -> str:
    """Move the service's revision back into the shared table, as before; returns it."""
    table = version_table(service)
    with db.engine.begin() as connection:
        (revision,) = connection.execute(text(f"SELECT version_num FROM {table}")).scalars()  # noqa: S608
        connection.execute(text(f"DROP TABLE {table}"))
        connection.execute(
            text(f"CREATE TABLE {LEGACY_VERSION_TABLE} (version_num VARCHAR(32) PRIMARY KEY)")
        )
        connection.execute(
            text(f"INSERT INTO {LEGACY_VERSION_TABLE} VALUES (:revision)"),  # noqa: S608
            {"revision": revision},
        )
    return str(revision)


def _schema_differences(db: Database, service: str) -> list[object]:
    """What the service's tables lack or have beyond its models (other services' aside)."""
    metadata = METADATA[service]

    def own(name: str | None, kind: str, parent: object) -> bool:
        return kind != "table" or name in metadata.tables

    with db.engine.connect() as connection:
        options = {
            "compare_type": True,
            "version_table": version_table(service),
            "include_name": own,
        }
        context = MigrationContext.configure(connection, opts=options)
        return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("service", ["loans", "audit"])
def test_a_database_with_the_old_version_table_is_adopted(
    service: str, shared: OneDatabase
) -> None:
    db = Database(shared.url)
    try:
        upgrade(db, LOCATIONS[service])
        revision = _make_legacy(db, service)
        upgrade(db, LOCATIONS[service])
        assert _versions(db) == {version_table(service): [revision]}
        assert _schema_differences(db, service) == []
    finally:
        db.dispose()


def _legacy_auth_outbox(db: Database) -> None:
    """Auth's outbox as its first revision made it before the rename, with a pending row."""
    legacy = Table(
        "outbox_events",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("payload", Text, nullable=False),
        Column("create_time", DateTime(timezone=True), nullable=False),
        Column("delivered_time", DateTime(timezone=True), nullable=True),
        UniqueConstraint("event_id", name="uq_outbox_events_event_id"),
        Index("ix_outbox_events_pending", "delivered_time", "id"),
    )
    legacy.primary_key.name = "pk_outbox_events"
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE auth_outbox_events"))
        legacy.create(connection)
        connection.execute(
            legacy.insert(),
            {"event_id": "e-1", "payload": "{}", "create_time": datetime(2026, 1, 1, tzinfo=UTC)},
        )


def test_an_auth_database_from_before_is_adopted_and_its_outbox_renamed(
    shared: OneDatabase,
) -> None:
    db = Database(shared.url)
    try:
        upgrade(db, LOCATIONS["auth"])
        with db.engine.begin() as connection:  # back to where 0002 left a database
            update = f"UPDATE {version_table('auth')} SET version_num = '0002'"  # noqa: S608
            connection.execute(text(update))
        _legacy_auth_outbox(db)
        _make_legacy(db, "auth")
        # audit starts first on the same database: "0002" names a revision of audit's
        # too, but the row is not audit's, whose tables are not there.
        upgrade(db, LOCATIONS["audit"])
        assert _versions(db)[LEGACY_VERSION_TABLE] == ["0002"]
        upgrade(db, LOCATIONS["auth"])
        upgrade(db, LOCATIONS["loans"])  # its outbox no longer clashes with auth's
        assert _versions(db) == {version_table(s): [_head(s)] for s in LOCATIONS}
        assert _sql(db, "SELECT event_id FROM auth_outbox_events") == [("e-1",)]
        for service in LOCATIONS:
            assert _schema_differences(db, service) == [], service
    finally:
        db.dispose()


# In a fresh interpreter, as at a service's start: alembic logs a line per plugin at
# INFO as soon as it is imported, which a test in this process would never see.
QUIET_START = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
from services.shared.db import Database
from services.shared.migrations import upgrade
db = Database(sys.argv[1])
upgrade(db, "services.audit:migrations")
upgrade(db, "services.audit:migrations")
db.dispose()
"""


def test_migrating_says_one_line_and_alembic_says_nothing_at_info(shared: OneDatabase) -> None:
    started = subprocess.run(
        [sys.executable, "-c", QUIET_START, shared.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert started.stderr.splitlines() == ["loansuite.migrations: database migrated"]
