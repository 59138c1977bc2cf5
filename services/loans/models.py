"""The loans database: loans, their outbox and idempotency keys."""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal

from sqlalchemy import Date, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.shared.columns import ExactDecimal, UTCDateTime
from services.shared.idempotency import IdempotencyMixin
from services.shared.outbox import OutboxMixin

__all__ = ["Base", "IdempotencyRecord", "Loan", "OutboxEvent"]


class Base(DeclarativeBase):
    pass


class Loan(Base):
    """A sustainability-linked loan between a borrower and (once invited) a lender."""

    __tablename__ = "loans"
    __table_args__ = (
        Index("ix_loans_borrower_created", "borrower_organization_id", "create_time", "id"),
        Index("ix_loans_lender_created", "lender_organization_id", "create_time", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    loan_type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    currency_code: Mapped[str] = mapped_column(String(3))
    principal_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    committed_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    drawn_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    start_date: Mapped[datetime.date] = mapped_column(Date)
    maturity_date: Mapped[datetime.date] = mapped_column(Date)
    borrower_organization_id: Mapped[str] = mapped_column(String(36))
    lender_organization_id: Mapped[str | None] = mapped_column(String(36), default=None)
    creator_user_id: Mapped[str] = mapped_column(String(36))
    # Bumped on every write; the etag is derived from it.
    version: Mapped[int] = mapped_column(Integer, default=1)
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's convention

    @property
    def etag(self) -> str:
        return hashlib.blake2b(f"{self.id}:{self.version}".encode(), digest_size=8).hexdigest()


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox_events"


class IdempotencyRecord(IdempotencyMixin, Base):
    __tablename__ = "idempotency_records"
