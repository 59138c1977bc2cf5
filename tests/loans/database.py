"""Direct SQL on the suite's databases: what no RPC may do, and the outbox as written.

Tests reach past the service only to force a state no sequence of calls
reaches, to inject a fault the database itself raises, or to read what a call
committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from services.shared.settings import ServiceName
from tests.support import Account, Suite


@contextmanager
def connected(suite: Suite, service: ServiceName = "loans") -> Iterator[Connection]:
    """One transaction on a service's database, committed when the block ends."""
    # NullPool and dispose: nothing lingers to hold a lock or a PostgreSQL backend.
    engine = create_engine(suite.settings.database_url(service), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def sql(suite: Suite, statement: str, **params: object) -> list[tuple[Any, ...]]:
    """Run one statement on the loans database; the rows it returns, if any."""
    with connected(suite) as conn:
        result = conn.execute(text(statement), params)
        return [tuple(row) for row in result] if result.returns_rows else []


def count(suite: Suite, table: str, **where: str) -> int:
    """How many rows of a loans table have the given column values."""
    condition = " AND ".join(f"{column} = :{column}" for column in where) or "1 = 1"
    query = f"SELECT count(*) FROM {table} WHERE {condition}"  # noqa: S608 - the tests' own names
    [(total,)] = sql(suite, query, **where)
    return int(total)


def set_state(suite: Suite, loan_id: str, state: str) -> None:
    """Put a loan in a state directly, without the transition that would lead there.

    Like every write, it gives the loan a new version (a new etag).
    """
    statement = "UPDATE loans SET state = :state, version = version + 1 WHERE id = :id"
    sql(suite, statement, state=state, id=loan_id)


def outbox(suite: Suite) -> list[dict[str, Any]]:
    """Every event the loans service wrote to its outbox, oldest first, as JSON payloads."""
    return [
        json.loads(payload)
        for (payload,) in sql(suite, "SELECT payload FROM outbox_events ORDER BY id")
    ]


def events(suite: Suite, resource_id: str) -> list[dict[str, Any]]:
    """The outbox events about one resource, oldest first."""
    return [event for event in outbox(suite) if event["resource_id"] == resource_id]


def actions(suite: Suite, resource_id: str) -> list[str]:
    """The actions of the outbox events about one resource, oldest first."""
    return [event["action"] for event in events(suite, resource_id)]


def events_of_request(suite: Suite, request_id: str) -> list[dict[str, Any]]:
    """The outbox events one call wrote, found by the x-request-id they carry."""
    return [event for event in outbox(suite) if event["request_id"] == request_id]


def undelivered(suite: Suite) -> int:
    """How many outbox events the relay has yet to deliver to the audit service."""
    [(total,)] = sql(suite, "SELECT count(*) FROM outbox_events WHERE delivered_time IS NULL")
    return int(total)


@contextmanager
def refusing_inserts(suite: Suite, table: str) -> Iterator[None]:
    """Within the block, the database itself refuses every insert into a loans table."""
    name = f"refuse_{table}"
    message = f"injected {table} failure"
    if suite.backend == "sqlite":
        install = [
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{message}'); END"
        ]
        remove = [f"DROP TRIGGER {name}"]
    else:
        install = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {name}()",
        ]
        remove = [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
    _execute(suite, install)
    try:
        yield
    finally:
        _execute(suite, remove)


def _execute(suite: Suite, statements: list[str]) -> None:
    with connected(suite) as conn:
        for statement in statements:
            conn.execute(text(statement))


def deactivate(suite: Suite, account: Account) -> None:
    """Deactivate a user in the auth database, as an operator would."""
    with connected(suite, "auth") as conn:
        query = text("UPDATE users SET active = false WHERE id = :id")
        conn.execute(query, {"id": account.user_id})
