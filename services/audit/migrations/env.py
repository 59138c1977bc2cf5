"""Alembic environment of the audit database."""

from services.audit.models import Base
from services.shared.migrations import run_env

run_env(Base.metadata, service="audit", own_table="audit_events")
