"""The hash chain revision renumbers and chains the events stored before it.

What every service's migrations share (models, downgrades, version table) is
tested in tests/test_migrations.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import column, insert, inspect, select, table
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from services.audit import use_cases
from services.audit.models import AuditEvent, AuditEventOrganization
from services.shared.columns import UTCDateTime
from services.shared.db import Database
from services.shared.migrations import upgrade


def _migrate(db: Database, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", "services.audit:migrations")
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _legacy_rows(count: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Rows as the first revision stored them: sequences with gaps, as rollbacks left them."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[dict[str, object]] = []
    links: list[dict[str, object]] = []
    for index in range(count):
        sequence = index + 1 + index // 7  # a gap after every seventh event
        events.append(
            {
                "sequence": sequence,
                "event_id": str(uuid.uuid4()),
                "action": "LOAN_CREATED",
                "resource_type": "loan",
                "resource_id": f"loan-{index}",
                "actor_user_id": "user-1",
                "actor_organization_id": "org-1",
                "actor_role": "BORROWER",
                "request_id": "req-1",
                "source": "loans",
                "occur_time": now + timedelta(seconds=index),
                "ingest_time": now + timedelta(seconds=index, microseconds=7),
                "changes": json.dumps([["name", "null", f'"Loan {index}"']]),
            }
        )
        links += [{"sequence": sequence, "organization_id": f"org-{o}"} for o in range(index % 3)]
    return events, links


def _legacy_events(row: dict[str, object]) -> TableClause:
    """audit_events as the first revision knew it: no hash column."""
    typed = {"occur_time": UTCDateTime(), "ingest_time": UTCDateTime()}
    return table("audit_events", *(column(name, typed.get(name)) for name in row))


def test_the_hash_chain_revision_renumbers_and_chains_existing_events(
    audit_url: str, backend: str
) -> None:
    db = Database(audit_url)
    try:
        _migrate(db, "0001")
        events, links = _legacy_rows(1200)  # more than one chunk of the migration
        with db.engine.begin() as connection:
            connection.execute(insert(_legacy_events(events[0])), events)
            connection.execute(insert(AuditEventOrganization), links)
        upgrade(db, "services.audit:migrations")
        with db.engine.connect() as connection:
            columns = {c["name"]: c for c in inspect(connection).get_columns("audit_events")}
        with db.read() as session:
            stored = [(e.sequence, e.event_id, e.organization_ids) for e in _all(session)]
            verification = use_cases.verify_chain(session, expected_head=None)
        _migrate(db, "0001", down=True)
        upgrade(db, "services.audit:migrations")  # and back: the chain is rebuilt alike
        with db.read() as session:
            again = [(e.sequence, e.hash) for e in _all(session)]
            rebuilt = use_cases.verify_chain(session, expected_head=None)
    finally:
        db.dispose()

    organizations: dict[object, list[str]] = {}
    for link in links:
        organizations.setdefault(link["sequence"], []).append(str(link["organization_id"]))
    assert stored == [
        (position, e["event_id"], sorted(organizations.get(e["sequence"], [])))
        for position, e in enumerate(events, start=1)
    ]
    assert (verification.intact, verification.checked_events) == (True, 1200)
    assert verification.head is not None
    assert again[-1] == (1200, verification.head.hash)
    assert (rebuilt.intact, rebuilt.head) == (True, verification.head)
    if backend == "postgresql":  # a writer that skips ingest's lock fails, not draws a number
        assert columns["sequence"]["default"] is None


def _all(session: Session) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.sequence)))
