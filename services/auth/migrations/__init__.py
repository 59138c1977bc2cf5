"""Alembic migrations of the auth database, applied by wiring.start()."""
