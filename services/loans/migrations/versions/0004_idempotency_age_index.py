"""idempotency records by age

The retention sweep deletes idempotency records older than their retention;
this index lets it find them without reading the whole table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_idempotency_records_create_time", "idempotency_records", ["create_time"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_records_create_time", table_name="idempotency_records")
