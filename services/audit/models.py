"""The audit database: events in log order, the organizations each concerns, a checkpoint."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Final

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.shared.columns import UTCDateTime

__all__ = [
    "EVENT_ID_LENGTH",
    "HASH_LENGTH",
    "TEXT_LENGTH",
    "AuditEvent",
    "AuditEventOrganization",
    "Base",
    "ChainCheckpoint",
]

EVENT_ID_LENGTH: Final = 36  # a UUID in canonical form
# Capacity of every other short text column; validation refuses longer values,
# since PostgreSQL would reject them and SQLite would keep them silently.
TEXT_LENGTH: Final = 200
HASH_LENGTH: Final = 64  # SHA-256 in lowercase hex
TRACE_ID_LENGTH: Final = 32  # W3C trace context ids in lowercase hex
SPAN_ID_LENGTH: Final = 16

# INTEGER on SQLite, as the first revision declared it (then for autoincrement;
# sequences are now assigned by ingest, see use_cases.ingest_events).
_SEQUENCE = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class AuditEvent(Base):
    """One event of the log: its gapless position from 1, and its link in the hash chain."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_resource", "resource_type", "resource_id", "sequence"),
        Index("ix_audit_events_actor", "actor_user_id", "sequence"),
    )

    sequence: Mapped[int] = mapped_column(_SEQUENCE, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LENGTH), unique=True)
    action: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    resource_type: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    resource_id: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    actor_user_id: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    actor_organization_id: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    actor_role: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    request_id: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    source: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    occur_time: Mapped[datetime] = mapped_column(UTCDateTime)
    ingest_time: Mapped[datetime] = mapped_column(UTCDateTime)
    # JSON list of [field, old JSON value, new JSON value].
    changes: Mapped[str] = mapped_column(Text)
    # See services/audit/chain.py for what it covers and how to recompute it.
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    # The trace of the call that caused the event (W3C ids in hex); "" when none.
    trace_id: Mapped[str] = mapped_column(String(TRACE_ID_LENGTH), server_default="")
    span_id: Mapped[str] = mapped_column(String(SPAN_ID_LENGTH), server_default="")

    organizations: Mapped[list[AuditEventOrganization]] = relationship(
        lazy="selectin", order_by="AuditEventOrganization.organization_id", viewonly=True
    )

    @property
    def organization_ids(self) -> list[str]:
        return [o.organization_id for o in self.organizations]

    @property
    def change_list(self) -> list[tuple[str, str, str]]:
        return [(f, old, new) for f, old, new in json.loads(self.changes)]


class AuditEventOrganization(Base):
    """An organization an event concerns: its members may read the event."""

    __tablename__ = "audit_event_organizations"
    __table_args__ = (
        # "Events of my organization, in log order" is a range scan of this index.
        Index("ix_audit_event_organizations_organization", "organization_id", "sequence"),
    )

    sequence: Mapped[int] = mapped_column(
        _SEQUENCE, ForeignKey("audit_events.sequence"), primary_key=True, autoincrement=False
    )
    organization_id: Mapped[str] = mapped_column(String(TEXT_LENGTH), primary_key=True)


class ChainCheckpoint(Base):
    """The last event VerifyChain found linked: later calls continue from it.

    One row (id 1), made by the migration with sequence 0 ("nothing verified yet"),
    only ever moved forward. It lives in the database it vouches for, so whoever can
    write there can move it too: the full recomputation (`loansuite audit verify`)
    never reads it.
    """

    __tablename__ = "audit_chain_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sequence: Mapped[int] = mapped_column(_SEQUENCE)
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    verify_time: Mapped[datetime] = mapped_column(UTCDateTime)
