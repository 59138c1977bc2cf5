"""The tables that retention keeps bounded, counted read-only from the services' databases."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import make_url

from services.auth.models import OutboxEvent as AuthOutboxEvent
from services.loans.models import IdempotencyRecord
from services.loans.models import OutboxEvent as LoansOutboxEvent
from services.shared.db import table_of

__all__ = ["ROW_TABLES", "read_only", "row_counts"]

# What grows with every write and what retention keeps bounded, by service and table.
# Auth keeps no idempotency records: none of its RPCs takes a request_id.
ROW_TABLES = {
    "loans.outbox": ("loans", table_of(LoansOutboxEvent)),
    "loans.idempotency": ("loans", table_of(IdempotencyRecord)),
    "auth.outbox": ("auth", table_of(AuthOutboxEvent)),
}


def row_counts(engines: dict[str, Engine]) -> dict[str, int]:
    """The row count of each of ROW_TABLES; engines by service name."""
    counts = {}
    for name, (service, table) in ROW_TABLES.items():
        with engines[service].connect() as conn:
            counts[name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return counts


def read_only(url: str) -> Engine:
    """An engine that cannot write: the bench only looks at the services' databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(f"sqlite:///file:{quote(parsed.database or '')}?mode=ro&uri=true")
    return create_engine(parsed, connect_args={"options": "-c default_transaction_read_only=on"})
