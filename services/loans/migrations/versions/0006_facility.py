"""facility: margin schedule, drawdowns, repayments and the ledger

Loans gain their facility terms (base margin, reference rate, interest period,
the cap and floor on the sum of KPI adjustments) and the amount repaid; existing
loans take the defaults a client that never sent them gets. Drawdown requests and
ledger entries get their tables. Vocabularies are written out, not imported: a
migration describes the schema as it was at its revision.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.shared.columns

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFERENCE_RATES = ("SOFR", "SONIA", "EURIBOR", "TONA", "FIXED")
_INTEREST_PERIODS = ("MONTHLY", "QUARTERLY", "SEMI_ANNUAL")
_DRAWDOWN_STATUSES = ("REQUESTED", "APPROVED", "REJECTED")
_ENTRY_TYPES = ("DRAWDOWN", "REPAYMENT")
_LOAN_COLUMNS = (
    "base_margin_bps",
    "reference_rate",
    "interest_period",
    "adjustment_cap_bps",
    "adjustment_floor_bps",
    "repaid_amount",
)


def _amount(name: str, **kwargs: object) -> sa.Column[object]:
    return sa.Column(
        name,
        services.shared.columns.ExactDecimal(precision=24, scale=6),
        nullable=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, services.shared.columns.UTCDateTime(timezone=True), nullable=nullable)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    with op.batch_alter_table("loans") as batch:
        batch.add_column(
            sa.Column("base_margin_bps", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("reference_rate", sa.String(16), nullable=False, server_default="FIXED")
        )
        batch.add_column(
            sa.Column("interest_period", sa.String(16), nullable=False, server_default="QUARTERLY")
        )
        batch.add_column(
            sa.Column("adjustment_cap_bps", sa.Integer(), nullable=False, server_default="500")
        )
        batch.add_column(
            sa.Column("adjustment_floor_bps", sa.Integer(), nullable=False, server_default="-500")
        )
        batch.add_column(_amount("repaid_amount", server_default="0"))
        batch.create_check_constraint("reference_rate", _one_of("reference_rate", _REFERENCE_RATES))
        batch.create_check_constraint(
            "interest_period", _one_of("interest_period", _INTEREST_PERIODS)
        )
    _create_drawdowns()
    _create_ledger_entries()


def _create_drawdowns() -> None:
    op.create_table(
        "drawdowns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("loan_id", sa.String(length=36), nullable=False),
        _amount("amount"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=False),
        sa.Column("requester_user_id", sa.String(length=36), nullable=False),
        sa.Column("decider_user_id", sa.String(length=36), nullable=True),
        sa.Column("ledger_entry_id", sa.String(length=36), nullable=True),
        _time("request_time"),
        _time("decide_time", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(_one_of("status", _DRAWDOWN_STATUSES), name="drawdown_status"),
    )
    with op.batch_alter_table("drawdowns") as batch:
        batch.create_index(batch.f("ix_drawdowns_loan_id"), ["loan_id"], unique=False)


def _create_ledger_entries() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("loan_id", sa.String(length=36), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("entry_type", sa.String(length=16), nullable=False),
        _amount("amount"),
        _amount("drawn_amount"),
        _amount("outstanding_amount"),
        sa.Column("drawdown_id", sa.String(length=36), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor_user_id", sa.String(length=36), nullable=False),
        _time("entry_time"),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("loan_id", "sequence", name="uq_ledger_entries_loan_sequence"),
        sa.CheckConstraint(_one_of("entry_type", _ENTRY_TYPES), name="ledger_entry_type"),
    )


def downgrade() -> None:
    op.drop_table("ledger_entries")
    with op.batch_alter_table("drawdowns") as batch:
        batch.drop_index(batch.f("ix_drawdowns_loan_id"))
    op.drop_table("drawdowns")
    with op.batch_alter_table("loans") as batch:
        batch.drop_constraint("interest_period", type_="check")
        batch.drop_constraint("reference_rate", type_="check")
        for column in reversed(_LOAN_COLUMNS):
            batch.drop_column(column)
