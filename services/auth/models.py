"""The auth database: organizations, users, signing keys, refresh tokens, throttles, outbox."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.shared.columns import UTCDateTime
from services.shared.identity import Role
from services.shared.outbox import OutboxMixin

__all__ = [
    "Base",
    "LoginThrottle",
    "Organization",
    "OrganizationType",
    "OutboxEvent",
    "RefreshToken",
    "SigningKey",
    "User",
]

# Named constraints: SQLite's batch migrations can only alter what has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrganizationType(enum.StrEnum):
    BORROWER = "BORROWER"
    LENDER = "LENDER"
    PLATFORM = "PLATFORM"


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    # VARCHAR plus a CHECK on both backends: no PostgreSQL enum type to migrate later.
    return Enum(kind, name=name, native_enum=False, create_constraint=True, length=16)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[OrganizationType] = mapped_column(_enum(OrganizationType, "organization_type"))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Stored normalized (stripped, lower-case), so the unique index is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime)

    # Every read of a user shows its organization: load both in one query.
    organization: Mapped[Organization] = relationship(lazy="joined", innerjoin=True)


class SigningKey(Base):
    """An Ed25519 key pair; the one with the highest generation signs new tokens."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Unique: replicas racing to create the first key (or the next) cannot both win.
    generation: Mapped[int] = mapped_column(Integer, unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    # The private key sealed with AES-GCM under the key-encryption key (key_encryption.py).
    sealed_private_key: Mapped[str] = mapped_column(Text)
    public_key_pem: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    # When a newer key took over signing; the key verifies until its tokens expire.
    retire_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RefreshToken(Base):
    """A refresh token, known only by its SHA-256 hash."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    # Every token descended from one login shares the id of that login's first token.
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    expire_time: Mapped[datetime] = mapped_column(UTCDateTime)
    revoke_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Set when the token was exchanged for its successor: using it again is a replay.
    replaced_by_id: Mapped[str | None] = mapped_column(String(36), default=None)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class LoginThrottle(Base):
    """Failed logins of one account or one peer, known by a hash of its key."""

    __tablename__ = "login_throttles"

    # SHA-256 of "account:<email>" or "peer:<address>": no email or address stored here.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    # Indexed: stale rows are swept by it, so made-up emails cannot grow the table.
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class OutboxEvent(OutboxMixin, Base):
    # Named for auth, so that auth and loans can share one database.
    __tablename__ = "auth_outbox_events"
