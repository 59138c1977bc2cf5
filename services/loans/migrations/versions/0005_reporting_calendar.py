"""reporting calendar and the rules that keep loan terms consistent

A loan's reporting grace (days after a KPI period's end by which its result is
due), a result's breach of its KPI's threshold, and the periods found missed:
one row per KPI and period (a unique key, so that concurrent observers record a
miss once), whose step-up is a margin adjustment without a result. Every margin
adjustment now names its period; existing ones take their result's.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.shared.columns

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERIOD_OF_RESULT = (
    "UPDATE margin_adjustments SET"
    " period_start = (SELECT period_start FROM kpi_results r WHERE r.id = kpi_result_id),"
    " period_end = (SELECT period_end FROM kpi_results r WHERE r.id = kpi_result_id)"
)


def upgrade() -> None:
    with op.batch_alter_table("loans") as batch:
        batch.add_column(
            sa.Column("reporting_grace_days", sa.Integer(), nullable=False, server_default="120")
        )
    with op.batch_alter_table("kpi_results") as batch:
        batch.add_column(
            sa.Column("breach", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("margin_adjustments") as batch:
        batch.add_column(sa.Column("period_start", sa.Date(), nullable=True))
        batch.add_column(sa.Column("period_end", sa.Date(), nullable=True))
        batch.add_column(sa.Column("due_date", sa.Date(), nullable=True))
    op.execute(_PERIOD_OF_RESULT)
    with op.batch_alter_table("margin_adjustments") as batch:
        batch.alter_column("period_start", existing_type=sa.Date(), nullable=False)
        batch.alter_column("period_end", existing_type=sa.Date(), nullable=False)
        batch.alter_column("kpi_result_id", existing_type=sa.String(length=36), nullable=True)
    op.create_table(
        "reporting_misses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("loan_id", sa.String(length=36), nullable=False),
        sa.Column("kpi_id", sa.String(length=36), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("margin_adjustment_id", sa.String(length=36), nullable=True),
        sa.Column(
            "create_time", services.shared.columns.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["kpi_id"], ["kpis.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kpi_id", "period_start", name="uq_reporting_misses_period"),
    )
    op.create_index("ix_reporting_misses_loan_id", "reporting_misses", ["loan_id"])


def downgrade() -> None:
    op.drop_index("ix_reporting_misses_loan_id", table_name="reporting_misses")
    op.drop_table("reporting_misses")
    # A missed period's step-up has no result; the older schema cannot hold it.
    op.execute("DELETE FROM margin_adjustments WHERE kpi_result_id IS NULL")
    with op.batch_alter_table("margin_adjustments") as batch:
        batch.alter_column("kpi_result_id", existing_type=sa.String(length=36), nullable=False)
        batch.drop_column("due_date")
        batch.drop_column("period_end")
        batch.drop_column("period_start")
    with op.batch_alter_table("kpi_results") as batch:
        batch.drop_column("breach")
    with op.batch_alter_table("loans") as batch:
        batch.drop_column("reporting_grace_days")
