"""Chain checkpoint: where VerifyChain continues, so a call costs only what is new.

One row, id 1, starting at sequence 0 with the genesis hash ("nothing verified
yet"); VerifyChain moves it forward with a conditional UPDATE, so concurrent
calls never race to insert it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import services.shared.columns

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    checkpoints = op.create_table(
        "audit_chain_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column(
            "verify_time", services.shared.columns.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(
        checkpoints,
        [{"id": 1, "sequence": 0, "hash": "0" * 64, "verify_time": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.drop_table("audit_chain_checkpoints")
