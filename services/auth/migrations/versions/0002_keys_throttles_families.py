"""Sealed signing keys, key retirement, login throttles and refresh-token families.

``signing_keys.private_key_pem`` becomes ``sealed_private_key``. The rows keep
their plaintext PEM here, because a migration does not know the key-encryption
key (it comes from the environment or a file, never from the database). Auth
seals every plaintext row in Python on its next start, before it signs anything
(``services.auth.signing_keys.seal_plaintext_keys``): a value that still starts
with ``-----BEGIN`` is plaintext, a sealed one never does. Until that start the
database is as exposed as it was before this revision, not more.

Each existing refresh token becomes a family of its own (its id), since the
logins they descend from were never recorded.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.alter_column("private_key_pem", new_column_name="sealed_private_key")
        batch.add_column(_instant("retire_time", nullable=True))
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("family_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("replaced_by_id", sa.String(36), nullable=True))
    op.execute("UPDATE refresh_tokens SET family_id = id")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.alter_column("family_id", existing_type=sa.String(36), nullable=False)
        batch.create_index("ix_refresh_tokens_family_id", ["family_id"])
    op.create_table(
        "login_throttles",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _instant("window_start"),
        _instant("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("key_hash", name="pk_login_throttles"),
    )
    op.create_index("ix_login_throttles_window_start", "login_throttles", ["window_start"])


def downgrade() -> None:
    # Sealed keys stay sealed: the previous revision's code cannot read them, so a
    # downgrade is for an empty database (tests) or follows a restore from backup.
    op.drop_table("login_throttles")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_index("ix_refresh_tokens_family_id")
        batch.drop_column("replaced_by_id")
        batch.drop_column("family_id")
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("retire_time")
        batch.alter_column("sealed_private_key", new_column_name="private_key_pem")
