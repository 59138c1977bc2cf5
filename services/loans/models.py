"""The loans database: loans with their KPIs, ratchets, results, ledger, history and outbox.

Everything that belongs to a loan goes with it (ON DELETE CASCADE). A change to
any part of the loan bumps the loan's version, so the loan's etag names the
state of the whole aggregate.
"""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from services.loans.vocabulary import (
    DrawdownStatus,
    InterestPeriod,
    KpiDirection,
    KpiOutcome,
    KpiResultStatus,
    KpiStatus,
    KpiType,
    LedgerEntryType,
    LoanState,
    LoanType,
    ObservationFrequency,
    ReferenceRate,
    WireEnum,
)
from services.shared.columns import ExactDecimal, UTCDateTime
from services.shared.errors import FailedPreconditionError
from services.shared.idempotency import IdempotencyMixin
from services.shared.identity import Caller, Role
from services.shared.outbox import OutboxMixin

__all__ = [
    "Base",
    "Drawdown",
    "IdempotencyRecord",
    "Kpi",
    "KpiResult",
    "LedgerEntry",
    "Loan",
    "LoanStateChange",
    "MarginAdjustment",
    "MarginRatchet",
    "OutboxEvent",
    "ReportingMiss",
    "etag_of",
]


def _enum(kind: type[WireEnum], name: str, length: int) -> Enum:
    """A vocabulary column: stored by value as a string, under a check constraint."""
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def _loan_fk() -> ForeignKey:
    return ForeignKey("loans.id", ondelete="CASCADE")


class Base(DeclarativeBase):
    pass


class Versioned:
    """A row whose every write bumps its version (the ORM checks it); its etag names it."""

    ETAG_KIND: ClassVar[str]
    id: Mapped[str]
    version: Mapped[int] = mapped_column(Integer, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]

    @property
    def etag(self) -> str:
        return etag_of(self.ETAG_KIND, self.id, self.version)


class Loan(Versioned, Base):
    """A sustainability-linked loan between a borrower and (once invited) a lender."""

    ETAG_KIND = "loan"

    __tablename__ = "loans"
    __table_args__ = (
        Index("ix_loans_borrower_created", "borrower_organization_id", "create_time", "id"),
        Index("ix_loans_lender_created", "lender_organization_id", "create_time", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    loan_type: Mapped[LoanType] = mapped_column(_enum(LoanType, "loan_type", 32))
    state: Mapped[LoanState] = mapped_column(_enum(LoanState, "loan_state", 32))
    currency_code: Mapped[str] = mapped_column(String(3))
    principal_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    committed_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    drawn_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    start_date: Mapped[datetime.date] = mapped_column(Date)
    maturity_date: Mapped[datetime.date] = mapped_column(Date)
    borrower_organization_id: Mapped[str] = mapped_column(String(36))
    lender_organization_id: Mapped[str | None] = mapped_column(String(36), default=None)
    creator_user_id: Mapped[str] = mapped_column(String(36))
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    # Facility terms (facility/terms.py), and what the ledger has had repaid.
    base_margin_bps: Mapped[int] = mapped_column(Integer, default=0)
    reference_rate: Mapped[ReferenceRate] = mapped_column(
        _enum(ReferenceRate, "reference_rate", 16), default=ReferenceRate.FIXED
    )
    interest_period: Mapped[InterestPeriod] = mapped_column(
        _enum(InterestPeriod, "interest_period", 16), default=InterestPeriod.QUARTERLY
    )
    adjustment_cap_bps: Mapped[int] = mapped_column(Integer, default=500)
    adjustment_floor_bps: Mapped[int] = mapped_column(Integer, default=-500)
    repaid_amount: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))

    @property
    def outstanding_amount(self) -> Decimal:
        """What is drawn and not yet repaid."""
        return self.drawn_amount - self.repaid_amount

    # Reporting terms (calendar/): a KPI period's result is due this many days after it ends.
    reporting_grace_days: Mapped[int] = mapped_column(Integer, default=120)

    def parties(self) -> tuple[str, ...]:
        """The organizations on either side of the loan (the lender once invited)."""
        lender = self.lender_organization_id
        return (
            (self.borrower_organization_id, lender) if lender else (self.borrower_organization_id,)
        )

    def side_of(self, caller: Caller) -> Role | None:
        """The side the caller acts on: its role, if its organization holds that side."""
        if caller.role is Role.BORROWER and caller.organization_id == self.borrower_organization_id:
            return Role.BORROWER
        if caller.role is Role.LENDER and caller.organization_id == self.lender_organization_id:
            return Role.LENDER
        return None

    def require_state(self, allowed: frozenset[LoanState], *, reason: str) -> None:
        """Refuse an action the loan's state does not allow: FAILED_PRECONDITION naming why."""
        if self.state not in allowed:
            states = " or ".join(sorted(allowed))
            raise FailedPreconditionError(
                f"the loan is {self.state}; this needs {states}", reason=reason
            )


def etag_of(kind: str, entity_id: str, version: int) -> str:
    """The etag of version `version` of an entity: opaque, and new with every version."""
    return hashlib.blake2b(f"{kind}:{entity_id}:{version}".encode(), digest_size=8).hexdigest()


class LoanStateChange(Base):
    """One transition of a loan's state: who, when, and why (for rejections)."""

    __tablename__ = "loan_state_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk(), index=True)
    from_state: Mapped[LoanState] = mapped_column(_enum(LoanState, "from_state", 32))
    to_state: Mapped[LoanState] = mapped_column(_enum(LoanState, "to_state", 32))
    actor_user_id: Mapped[str] = mapped_column(String(36))
    actor_organization_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(Text, default="")
    change_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class Kpi(Versioned, Base):
    """A sustainability KPI the borrower proposes and the lender accepts or rejects."""

    ETAG_KIND = "kpi"

    __tablename__ = "kpis"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk(), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kpi_type: Mapped[KpiType] = mapped_column(_enum(KpiType, "kpi_type", 40))
    unit: Mapped[str] = mapped_column(String(40))
    direction: Mapped[KpiDirection] = mapped_column(_enum(KpiDirection, "kpi_direction", 24))
    baseline_value: Mapped[Decimal] = mapped_column(ExactDecimal)
    target_value: Mapped[Decimal] = mapped_column(ExactDecimal)
    threshold_value: Mapped[Decimal | None] = mapped_column(ExactDecimal, default=None)
    observation_frequency: Mapped[ObservationFrequency] = mapped_column(
        _enum(ObservationFrequency, "observation_frequency", 24)
    )
    effective_from: Mapped[datetime.date] = mapped_column(Date)
    effective_to: Mapped[datetime.date] = mapped_column(Date)
    status: Mapped[KpiStatus] = mapped_column(_enum(KpiStatus, "kpi_status", 16))
    rejection_reason: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)

    def revise(self, now: datetime.datetime) -> None:
        """Any edit sends the KPI back to PROPOSED: the lender reviews what it will be held to."""
        self.status, self.rejection_reason, self.update_time = KpiStatus.PROPOSED, "", now

    def reopen_review(self, now: datetime.datetime) -> bool:
        """Back to PROPOSED after a change its review did not see; whether it had been reviewed."""
        if self.status is KpiStatus.PROPOSED:
            return False
        self.revise(now)
        return True

    def review(self, status: KpiStatus, reason: str, now: datetime.datetime) -> None:
        """The lender's verdict on a PROPOSED KPI; a reviewed KPI is reviewed again once revised."""
        if self.status is not KpiStatus.PROPOSED:
            raise FailedPreconditionError(
                f"the KPI was already reviewed ({self.status}); it is reviewed again once edited",
                reason="KPI_ALREADY_REVIEWED",
            )
        self.status, self.rejection_reason, self.update_time = status, reason, now


class MarginRatchet(Versioned, Base):
    """How a KPI's verified results move the loan's margin, in basis points."""

    ETAG_KIND = "ratchet"

    __tablename__ = "margin_ratchets"
    __table_args__ = (UniqueConstraint("kpi_id", name="uq_margin_ratchets_kpi_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk(), index=True)
    kpi_id: Mapped[str] = mapped_column(String(36), ForeignKey("kpis.id", ondelete="CASCADE"))
    step_up_bps: Mapped[int] = mapped_column(Integer)
    step_down_bps: Mapped[int] = mapped_column(Integer)
    cap_bps: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class KpiResult(Versioned, Base):
    """A reported value of a KPI for a period; restated results are superseded, never deleted."""

    ETAG_KIND = "result"

    __tablename__ = "kpi_results"
    __table_args__ = (Index("ix_kpi_results_kpi_period", "kpi_id", "period_start"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk(), index=True)
    kpi_id: Mapped[str] = mapped_column(String(36), ForeignKey("kpis.id", ondelete="CASCADE"))
    period_start: Mapped[datetime.date] = mapped_column(Date)
    period_end: Mapped[datetime.date] = mapped_column(Date)
    value: Mapped[Decimal] = mapped_column(ExactDecimal)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[KpiResultStatus] = mapped_column(_enum(KpiResultStatus, "kpi_result_status", 16))
    outcome: Mapped[KpiOutcome | None] = mapped_column(
        _enum(KpiOutcome, "kpi_result_outcome", 8), default=None
    )
    restates_result_id: Mapped[str | None] = mapped_column(String(36), default=None)
    superseded_by_result_id: Mapped[str | None] = mapped_column(String(36), default=None)
    reporter_user_id: Mapped[str] = mapped_column(String(36))
    verifier_user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    report_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    verify_time: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
    # Worse than the KPI's threshold_value when reported (results/use_cases.py).
    breach: Mapped[bool] = mapped_column(Boolean, default=False)


class MarginAdjustment(Base):
    """The margin change a verified result or a missed period produced, clamped to the cap."""

    __tablename__ = "margin_adjustments"
    __table_args__ = (Index("ix_margin_adjustments_loan_created", "loan_id", "create_time", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk())
    kpi_id: Mapped[str] = mapped_column(String(36))
    # None for a missed period (calendar/misses.py), which sets due_date instead.
    kpi_result_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("kpi_results.id", ondelete="CASCADE"), unique=True
    )
    ratchet_id: Mapped[str] = mapped_column(String(36))
    outcome: Mapped[KpiOutcome] = mapped_column(_enum(KpiOutcome, "adjustment_outcome", 8))
    requested_bps: Mapped[int] = mapped_column(Integer)
    applied_bps: Mapped[int] = mapped_column(Integer)
    cumulative_bps: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    period_start: Mapped[datetime.date] = mapped_column(Date)
    period_end: Mapped[datetime.date] = mapped_column(Date)
    due_date: Mapped[datetime.date | None] = mapped_column(Date, default=None)


class ReportingMiss(Base):
    """A KPI period found past its due date without a verified result: recorded once."""

    __tablename__ = "reporting_misses"
    # One miss per KPI period, however many readers and sweeps observe it at once.
    __table_args__ = (
        UniqueConstraint("kpi_id", "period_start", name="uq_reporting_misses_period"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk(), index=True)
    kpi_id: Mapped[str] = mapped_column(String(36), ForeignKey("kpis.id", ondelete="CASCADE"))
    period_start: Mapped[datetime.date] = mapped_column(Date)
    period_end: Mapped[datetime.date] = mapped_column(Date)
    due_date: Mapped[datetime.date] = mapped_column(Date)
    # The step-up it caused; None when the KPI has no ratchet.
    margin_adjustment_id: Mapped[str | None] = mapped_column(String(36), default=None)
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox_events"


class IdempotencyRecord(IdempotencyMixin, Base):
    __tablename__ = "idempotency_records"


class Drawdown(Versioned, Base):
    """A borrower's request to draw on an ACTIVE loan, and its lender's decision."""

    ETAG_KIND = "drawdown"

    __tablename__ = "drawdowns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk(), index=True)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    status: Mapped[DrawdownStatus] = mapped_column(_enum(DrawdownStatus, "drawdown_status", 16))
    note: Mapped[str] = mapped_column(Text, default="")
    rejection_reason: Mapped[str] = mapped_column(Text, default="")
    requester_user_id: Mapped[str] = mapped_column(String(36))
    decider_user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    ledger_entry_id: Mapped[str | None] = mapped_column(String(36), default=None)
    request_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    decide_time: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)


class LedgerEntry(Base):
    """One movement of money on a loan, numbered per loan, with the balances after it.

    Entries are only ever added, under the loan's lock, so a loan's sequence
    numbers are gapless and its last entry holds its balances.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("loan_id", "sequence", name="uq_ledger_entries_loan_sequence"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36), _loan_fk())
    sequence: Mapped[int] = mapped_column(Integer)
    entry_type: Mapped[LedgerEntryType] = mapped_column(
        _enum(LedgerEntryType, "ledger_entry_type", 16)
    )
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    drawn_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    outstanding_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    drawdown_id: Mapped[str | None] = mapped_column(String(36), default=None)
    note: Mapped[str] = mapped_column(Text, default="")
    actor_user_id: Mapped[str] = mapped_column(String(36))
    entry_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
