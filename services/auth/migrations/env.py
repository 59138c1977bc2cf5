"""Alembic environment of the auth database."""

from services.auth.models import Base
from services.shared.migrations import run_env

run_env(Base.metadata, service="auth", own_table="signing_keys")
