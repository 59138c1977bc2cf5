"""Alembic environment of the loans database."""

from services.loans.models import Base
from services.shared.migrations import run_env

run_env(Base.metadata, service="loans", own_table="loans")
