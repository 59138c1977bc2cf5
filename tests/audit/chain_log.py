"""A log built through the real ingest path, copies of it, and an attacker's edits to them.

The attacker writes straight to the database with SQL, with foreign keys off
(an attacker with database access can do that), and knows the published chain
algorithm: where it helps them, they recompute hashes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from services.audit import queries
from services.audit.chain import GENESIS, ChainedEvent, Head, canonical_encoding, link_hash
from services.audit.models import AuditEvent, AuditEventOrganization
from services.shared.db import database_url
from tests.support import LOANSUITE, POSTGRES

Log = dict[int, ChainedEvent]
Corruption = Callable[[Connection, Log], None]


@dataclass
class BuiltLog:
    """A log, its published heads, and the copies made of it."""

    backend: str
    directory: Path
    url: str
    heads: Path
    head: Head
    copies: list[str] = field(default_factory=list)

    def copy(self, name: str) -> str:
        """A copy of the log's database; nothing may be connected to the original."""
        original = make_url(self.url)
        if self.backend == "sqlite":
            target = self.directory / f"{name}.db"
            for suffix in ("", "-wal"):  # a write-ahead log left behind holds committed data
                source = Path(f"{original.database}{suffix}")
                if source.exists():
                    shutil.copy(source, f"{target}{suffix}")  # private (0600) like the original
            return f"sqlite:///{target}"
        database = f"{original.database}_{name}"
        with psycopg.connect(POSTGRES.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{original.database}"')
        self.copies.append(database)
        return database_url(original, database)

    def drop_copies(self) -> None:
        if self.copies:
            with psycopg.connect(POSTGRES.admin_dsn, autocommit=True) as conn:
                for database in self.copies:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def read_log(url: str) -> Log:
    """Every event of the log at url, by sequence."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {e.sequence: e for e in queries.chained_events(Session(bind=connection))}
    finally:
        engine.dispose()


def tamper(url: str, corruption: Corruption, log: Log) -> None:
    """Apply corruption to the copy at url of log in one transaction, foreign keys off."""
    engine = create_engine(url)  # a plain engine: SQLite enforces no foreign keys by default
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL session_replication_role = replica"))
            corruption(connection, log)
    finally:
        engine.dispose()


def verify_command(directory: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    """`loansuite audit verify` on url, started; communicate() collects it."""
    command = [LOANSUITE, "audit", "verify", "--data-dir", str(directory), "--database-url", url]
    return subprocess.Popen(
        [*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# -- the attacker's tools -------------------------------------------------------


def execute(connection: Connection, sql: str, **params: Any) -> None:
    """Run the attacker's SQL; clauses come from the tests, values travel as parameters."""
    connection.execute(text(sql), params)


def move(connection: Connection, where: str, to: str, **params: Any) -> None:
    """Renumber rows of both tables in two steps, so the primary key never clashes midway."""
    for table in ("audit_events", "audit_event_organizations"):
        execute(connection, f"UPDATE {table} SET sequence = -({to}) WHERE {where}", **params)  # noqa: S608
        execute(connection, f"UPDATE {table} SET sequence = -sequence WHERE sequence < 0")  # noqa: S608


def delete(connection: Connection, where: str, **params: Any) -> None:
    for table in ("audit_event_organizations", "audit_events"):
        execute(connection, f"DELETE FROM {table} WHERE {where}", **params)  # noqa: S608


def rehash(event: ChainedEvent, previous: ChainedEvent | None) -> ChainedEvent:
    """The event with the hash the chain algorithm gives it after previous."""
    before = bytes.fromhex(previous.hash) if previous else GENESIS
    return dataclasses.replace(event, hash=link_hash(before, canonical_encoding(event)).hex())


def store(connection: Connection, event: ChainedEvent) -> None:
    """Insert an event row and its organization links as ingest would have."""
    row = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    row.pop("organization_ids")
    row["changes"] = json.dumps([list(c) for c in event.changes], separators=(",", ":"))
    connection.execute(insert(AuditEvent), row)
    links = [{"sequence": event.sequence, "organization_id": o} for o in event.organization_ids]
    if links:
        connection.execute(insert(AuditEventOrganization), links)


def update(connection: Connection, event: ChainedEvent) -> None:
    delete(connection, "sequence = :s", s=event.sequence)
    store(connection, event)


def forged(template: ChainedEvent, sequence: int, previous: ChainedEvent | None) -> ChainedEvent:
    """A new event that looks like template, chained properly after previous."""
    event = dataclasses.replace(
        template, sequence=sequence, event_id=str(uuid.uuid4()), resource_id="forged"
    )
    return rehash(event, previous)
