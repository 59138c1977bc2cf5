"""The outbox table of an auth database made before 0001 named it auth_outbox_events.

Auth and loans both called their outbox ``outbox_events``, so they could not share
one database. 0001 now creates ``auth_outbox_events``; this revision renames the
table of a database made earlier, with its key, unique constraint and index (and
on PostgreSQL its id sequence), and does nothing to a database made since.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD, NEW = "outbox_events", "auth_outbox_events"
COLUMNS = "id, event_id, payload, create_time, delivered_time"


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if OLD not in tables or NEW in tables:
        return
    if op.get_bind().dialect.name == "postgresql":
        op.rename_table(OLD, NEW)
        op.execute(f"ALTER INDEX ix_{OLD}_pending RENAME TO ix_{NEW}_pending")
        for old, new in ((f"pk_{OLD}", f"pk_{NEW}"), (f"uq_{OLD}_event_id", f"uq_{NEW}_event_id")):
            op.execute(f"ALTER TABLE {NEW} RENAME CONSTRAINT {old} TO {new}")
        op.execute(f"ALTER SEQUENCE IF EXISTS {OLD}_id_seq RENAME TO {NEW}_id_seq")
        return
    # SQLite keeps constraint names inside the table's definition and index names per
    # database: the table is built anew under the new names and the rows copied over.
    op.create_table(
        NEW,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{NEW}"),
        sa.UniqueConstraint("event_id", name=f"uq_{NEW}_event_id"),
    )
    op.execute(f"INSERT INTO {NEW} ({COLUMNS}) SELECT {COLUMNS} FROM {OLD}")  # noqa: S608
    op.drop_index(f"ix_{OLD}_pending", table_name=OLD)
    op.drop_table(OLD)
    op.create_index(f"ix_{NEW}_pending", NEW, ["delivered_time", "id"])


def downgrade() -> None:
    # 0001 creates the table under its new name: there is nothing to undo.
    pass
