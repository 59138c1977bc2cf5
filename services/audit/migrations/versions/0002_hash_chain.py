"""Hash chain: audit_events.hash, and sequences assigned by ingest rather than the database.

Existing events are renumbered 1..N in their current order (an autoincrement
left gaps after rollbacks) and chained. A page token issued before this
revision may then skip or repeat a few events; nothing else refers to a
sequence. The chain is computed with services.audit.chain, whose encoding is a
published contract: a change to it would need a revision of its own anyway.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00.000000
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from services.audit.chain import GENESIS, ChainedEvent, canonical_encoding, link_hash
from services.shared.columns import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 1000
_TEXT = (
    "event_id",
    "action",
    "resource_type",
    "resource_id",
    "actor_user_id",
    "actor_organization_id",
    "actor_role",
    "request_id",
    "source",
    "changes",
    "hash",
)
_events = sa.table(
    "audit_events",
    sa.column("sequence", sa.BigInteger()),
    sa.column("occur_time", UTCDateTime()),
    sa.column("ingest_time", UTCDateTime()),
    *(sa.column(name, sa.String()) for name in _TEXT),
)
_links = sa.table(
    "audit_event_organizations",
    sa.column("sequence", sa.BigInteger()),
    sa.column("organization_id", sa.String()),
)


def upgrade() -> None:
    # NOT NULL needs a default for the rows already there; SQLite cannot drop
    # it again without rebuilding a referenced table, so there it stays (ingest
    # always sets the hash, and an empty one fails verification).
    op.add_column(
        "audit_events",
        sa.Column("hash", sa.String(length=64), nullable=False, server_default=""),
    )
    _rechain(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("audit_events", "hash", server_default=None)
        # A writer that forgot to number its rows must fail, not draw a number.
        op.alter_column("audit_events", "sequence", server_default=None)
        op.execute("DROP SEQUENCE IF EXISTS audit_events_sequence_seq")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE audit_events_sequence_seq OWNED BY audit_events.sequence")
        op.execute(
            "SELECT setval('audit_events_sequence_seq', COALESCE(MAX(sequence), 0) + 1, false)"
            " FROM audit_events"
        )
        op.alter_column(
            "audit_events",
            "sequence",
            server_default=sa.text("nextval('audit_events_sequence_seq')"),
        )
    op.drop_column("audit_events", "hash")


def _rechain(connection: sa.Connection) -> None:
    """Renumber and chain every event, a chunk at a time, in sequence order."""
    previous, position, after = GENESIS, 0, 0
    while True:
        query = sa.select(_events).where(_events.c.sequence > after).order_by(_events.c.sequence)
        chunk = [dict(row) for row in connection.execute(query.limit(_CHUNK)).mappings()]
        if not chunk:
            return
        after = chunk[-1]["sequence"]
        old = [row["sequence"] for row in chunk]
        organizations = _organizations(connection, old)
        # Delete, then insert renumbered: every new number is at most the old one
        # and all smaller old numbers are already done, so none is taken.
        connection.execute(sa.delete(_links).where(_links.c.sequence.in_(old)))
        connection.execute(sa.delete(_events).where(_events.c.sequence.in_(old)))
        links: list[dict[str, Any]] = []
        for row in chunk:
            position += 1
            ids = organizations[row["sequence"]]
            previous = _link(row, position, ids, previous)
            links += [{"sequence": position, "organization_id": o} for o in ids]
        connection.execute(sa.insert(_events), chunk)
        if links:
            connection.execute(sa.insert(_links), links)


def _link(row: dict[str, Any], sequence: int, ids: list[str], previous: bytes) -> bytes:
    """Give the row its new sequence and its hash after previous; return that hash."""
    row["sequence"] = sequence
    event = ChainedEvent(**{**row, "changes": json.loads(row["changes"])}, organization_ids=ids)
    row["hash"] = link_hash(previous, canonical_encoding(event)).hex()
    return bytes.fromhex(row["hash"])


def _organizations(connection: sa.Connection, sequences: list[int]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = defaultdict(list)
    query = sa.select(_links.c.sequence, _links.c.organization_id).where(
        _links.c.sequence.in_(sequences)
    )
    for sequence, organization_id in connection.execute(query):
        grouped[sequence].append(organization_id)
    return grouped
