"""Group commit test support: a database of items (whose foreign key is checked only at
COMMIT), a count of commits, and a write submitted as one request's caller."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.shared import context
from services.shared.db import Database


@contextlib.contextmanager
def items_database(url: str) -> Iterator[Database]:
    """A database with items and their parents; an item's parent is checked at COMMIT."""
    database = Database(url)
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE parents (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, note TEXT NOT NULL,"
                " parent_id INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    try:
        yield database
    finally:
        database.dispose()


def commits_of(db: Database) -> list[int]:
    """Counts db's committed write transactions from now on (one entry per commit)."""
    seen: list[int] = []
    db.on_commit(lambda _session: seen.append(1))
    return seen


def submitted(db: Database, work: Callable[[Session], Any], request_id: str = "") -> Any:
    """The value of work, submitted by the caller of request_id, or what it raised."""
    token = context.set_request_id(request_id)
    try:
        return db.submit(work)
    except Exception as exc:
        return exc
    finally:
        context.reset_request_id(token)
