"""Trace ids on audit events: the W3C trace and span of the call that caused each one.

Existing events get "" for both, which the chain's encoding leaves out, so their
hashes still verify.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: the table, which others reference, stays put.
    op.add_column(
        "audit_events",
        sa.Column("trace_id", sa.String(length=32), server_default="", nullable=False),
    )
    op.add_column(
        "audit_events",
        sa.Column("span_id", sa.String(length=16), server_default="", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("audit_events", "span_id")
    op.drop_column("audit_events", "trace_id")
