"""Row counts of every table of the suite's three databases: what a call wrote, if anything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sqlalchemy import Engine, create_engine, inspect, text

from services.shared.settings import ServiceName, Settings
from tests.support import eventually

__all__ = ["RowCounts", "difference"]

SERVICES: Final[tuple[ServiceName, ...]] = ("auth", "loans", "audit")


class RowCounts:
    """Counts the rows of each table, once the outbox relays have delivered all they hold."""

    def __init__(self, settings: Settings) -> None:
        self._engines: dict[str, Engine] = {
            service: create_engine(settings.database_url(service)) for service in SERVICES
        }
        # Alembic's version tables change only at start-up; every other table is watched,
        # the ones a migration added since this test was written included.
        self._tables: dict[str, list[str]] = {}
        self._outboxes: list[tuple[str, str]] = []  # (service, table) of each outbox
        for service, engine in self._engines.items():
            catalog = inspect(engine)
            self._tables[service] = [t for t in catalog.get_table_names() if "alembic" not in t]
            self._outboxes += [
                (service, table)
                for table in self._tables[service]
                if "delivered_time" in {c["name"] for c in catalog.get_columns(table)}
            ]
        assert {service for service, _ in self._outboxes} == {"auth", "loans"}, self._outboxes

    def snapshot(self) -> dict[str, int]:
        """Rows per "service.table", once the relays have caught up with earlier calls."""
        # Until then audit's tables still grow with what earlier, accepted calls wrote.
        eventually(lambda: self._undelivered() == 0, "the outboxes delivered")
        counts: dict[str, int] = {}
        for service, engine in self._engines.items():
            union = " UNION ALL ".join(
                f"SELECT '{table}', count(*) FROM {table}"  # noqa: S608 - names from the catalog
                for table in self._tables[service]
            )
            with engine.connect() as conn:
                counts.update({f"{service}.{t}": int(n) for t, n in conn.execute(text(union))})
        return counts

    def _undelivered(self) -> int:
        pending = 0
        for service, table in self._outboxes:
            query = f"SELECT count(*) FROM {table} WHERE delivered_time IS NULL"  # noqa: S608
            with self._engines[service].connect() as conn:
                pending += int(conn.execute(text(query)).scalar_one())
        return pending

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()


def difference(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """The tables whose row count changed, with the change."""
    tables = before.keys() | after.keys()
    changed = {t: after.get(t, 0) - before.get(t, 0) for t in sorted(tables)}
    return {table: delta for table, delta in changed.items() if delta}
