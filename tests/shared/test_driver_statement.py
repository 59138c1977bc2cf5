"""DriverStatement: a prebuilt statement run on the driver's cursor reads and writes what
Connection.execute does, refuses what it cannot do alike, and fails as SQLAlchemy fails.

Sends deferred on PostgreSQL go with the next statement, in order, and raise there.

Real SQLite and PostgreSQL databases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    BindParameter,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.shared import db as db_module
from services.shared.columns import UTCDateTime
from services.shared.db import Database, libpq_dsn
from services.shared.driver_statement import DriverStatement, deferred_sends

_METADATA = MetaData()
_ITEMS = Table(
    "items",
    _METADATA,
    Column("id", String(36), primary_key=True),
    Column("owner", String(36), nullable=False),
    Column("other", String(36)),
    Column("version", Integer, nullable=False),
    Column("made", UTCDateTime, nullable=False),
)
_OWNER: BindParameter[Any] = bindparam("owner")
_VISIBLE = select(_ITEMS.c.id, _ITEMS.c.version).where(
    _ITEMS.c.id == bindparam("id"), or_(_ITEMS.c.owner == _OWNER, _ITEMS.c.other == _OWNER)
)


@pytest.fixture
def db(new_database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(new_database_url("driver"))
    _METADATA.create_all(database.engine)
    made = datetime(2027, 1, 1, tzinfo=UTC)
    with database.engine.begin() as conn:
        conn.execute(
            insert(_ITEMS),
            [
                {"id": "a", "owner": "o1", "other": "o2", "version": 3, "made": made},
                {"id": "b", "owner": "o2", "other": None, "version": 1, "made": made},
            ],
        )
    try:
        yield database
    finally:
        database.dispose()


def test_it_reads_what_execute_reads_with_a_parameter_used_twice(db: Database) -> None:
    query = DriverStatement(_VISIBLE)
    cases = [
        {"id": "a", "owner": "o1"},  # the owner
        {"id": "a", "owner": "o2"},  # the other side
        {"id": "b", "owner": "o2"},
        {"id": "b", "owner": "o1"},  # not o1's: no row
        {"id": "z", "owner": "o1"},  # no such item
    ]
    with db.reading() as connection:
        for params in cases:
            expected = connection.execute(_VISIBLE, params).first()
            assert query.first(connection, params) == (expected and tuple(expected))
    with db.reading() as connection:  # compiled once per dialect, then reused
        assert query.first(connection, {"id": "a", "owner": "o1"}) == ("a", 3)
        assert query.first(connection, {"owner": "o2", "id": "b"}) == ("b", 1)


def test_one_parameter_alone_is_bound_as_a_sequence_of_one(db: Database) -> None:
    query = DriverStatement(select(_ITEMS.c.owner).where(_ITEMS.c.id == bindparam("id")))
    with db.reading() as connection:
        assert query.first(connection, {"id": "b"}) == ("o2",)


def test_values_are_converted_by_their_types_as_execute_converts_them(db: Database) -> None:
    made = datetime(2027, 1, 1, tzinfo=UTC)
    query = DriverStatement(
        select(_ITEMS).where(_ITEMS.c.made == bindparam("made", type_=UTCDateTime()))
    )
    with db.reading() as connection:
        for params in ({"made": made}, {"made": made.replace(year=2030)}):
            expected = connection.execute(query.statement, params).first()
            row = query.first(connection, params)
            assert row == (expected and tuple(expected))
        row = query.first(connection, {"made": made})
    assert row is not None
    assert (row.id, row.made, row.made.tzinfo) == ("a", made, UTC)  # columns by name, aware
    assert row.other == "o2"


def test_a_column_is_converted_also_when_null(db: Database) -> None:
    query = DriverStatement(
        select(_ITEMS.c.other, _ITEMS.c.made).where(_ITEMS.c.id == bindparam("id"))
    )
    with db.reading() as connection:
        assert query.first(connection, {"id": "b"}) == (None, datetime(2027, 1, 1, tzinfo=UTC))


def test_values_the_statement_carries_are_taken_as_built(db: Database) -> None:
    made = datetime(2027, 1, 1, tzinfo=UTC)
    statements = [
        select(_ITEMS.c.id).where(_ITEMS.c.version == 3),
        select(_ITEMS.c.id).where(_ITEMS.c.made == made, _ITEMS.c.owner == bindparam("owner")),
        select(_ITEMS.c.id).where(_ITEMS.c.owner == bindparam("owner")).order_by("id").limit(1),
    ]
    with db.reading() as connection:
        for statement in statements:
            expected = [tuple(r) for r in connection.execute(statement, {"owner": "o2"})]
            assert DriverStatement(statement).all(connection, {"owner": "o2"}) == expected
            assert expected  # each finds a row: the values reached the database converted
        limited = DriverStatement(select(_ITEMS.c.id).order_by("id").limit(1))
        assert limited.all(connection, {}) == [("a",)]


@pytest.mark.parametrize(
    "statement",
    [
        select(_ITEMS.c.id).where(_ITEMS.c.id.in_(bindparam("ids", expanding=True))),
        select(_ITEMS.c.id).where(_ITEMS.c.id == bindparam("now", callable_=lambda: "a")),
    ],
)
def test_a_parameter_made_at_execution_is_refused_when_first_compiled(
    db: Database, statement: object
) -> None:
    query = DriverStatement(statement)  # type: ignore[arg-type]
    with db.reading() as connection, pytest.raises(TypeError, match="only plain named"):
        query.first(connection, {"ids": ["a"]})


def test_a_column_without_a_name_is_refused() -> None:
    with pytest.raises(TypeError, match="needs a name"):
        DriverStatement(select(literal("x") + "y"))


def test_an_insert_writes_what_execute_writes(db: Database) -> None:
    made = datetime(2028, 2, 29, 12, 30, tzinfo=UTC)
    row = {"id": "c", "owner": "o3", "other": None, "version": 7, "made": made}
    with db.engine.begin() as connection:
        DriverStatement(insert(_ITEMS)).run(connection, row)  # every column, given
        connection.execute(insert(_ITEMS), {**row, "id": "d"})
    with db.reading() as connection:
        stored = connection.execute(
            select(_ITEMS.c.made, _ITEMS.c.other, _ITEMS.c.version).where(
                _ITEMS.c.id.in_(["c", "d"])
            )
        ).all()
    assert [tuple(r) for r in stored] == [(made, None, 7), (made, None, 7)]


def test_an_insert_returning_gives_its_row_and_an_update_its_count(db: Database) -> None:
    added = DriverStatement(
        insert(_ITEMS).returning(_ITEMS.c.id, _ITEMS.c.made),
        columns=("id", "owner", "version", "made"),
    )
    bump = DriverStatement(
        update(_ITEMS).where(_ITEMS.c.owner == bindparam("who")).values(version=bindparam("to"))
    )
    made = datetime(2027, 6, 1, tzinfo=UTC)
    with db.engine.begin() as connection:
        row = added.first(connection, {"id": "e", "owner": "o1", "version": 1, "made": made})
        assert row == ("e", made)
        assert (row.id, row.made) == ("e", made)
        assert bump.run(connection, {"who": "o1", "to": 9}) == 2  # a and e
        assert bump.run(connection, {"who": "nobody", "to": 9}) == 0
    with db.reading() as connection:
        versions = connection.execute(select(_ITEMS.c.id, _ITEMS.c.version).order_by("id")).all()
    assert [tuple(v) for v in versions] == [("a", 9), ("b", 1), ("e", 9)]


def test_a_write_rolled_back_with_its_transaction_is_gone(db: Database) -> None:
    made = datetime(2027, 6, 1, tzinfo=UTC)
    with db.engine.connect() as connection:
        transaction = connection.begin()
        DriverStatement(insert(_ITEMS)).run(
            connection, {"id": "f", "owner": "o1", "other": None, "version": 1, "made": made}
        )
        transaction.rollback()
    with db.reading() as connection:
        assert connection.execute(select(_ITEMS.c.id).where(_ITEMS.c.id == "f")).first() is None


def test_an_insert_column_left_to_a_python_default_is_refused(db: Database) -> None:
    with_default = Table(
        "defaults",
        MetaData(),
        Column("id", String(8), primary_key=True),
        Column("n", Integer, default=1),
    )
    with_default.create(db.engine)
    with (
        db.engine.begin() as connection,
        pytest.raises(TypeError, match="n: left to a Python-side default"),
    ):
        DriverStatement(insert(with_default), columns=("id",)).run(connection, {"id": "x"})


def test_a_driver_error_is_sqlalchemys_and_leaves_the_connection_usable(db: Database) -> None:
    query = DriverStatement(select(_ITEMS.c.id).where(_ITEMS.c.id == bindparam("id")))
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE items")
    with db.reading() as connection:
        with pytest.raises(DBAPIError) as failed:
            query.first(connection, {"id": "a"})
        assert "items" in str(failed.value.orig)
        assert not failed.value.connection_invalidated
        assert not connection.invalidated
        assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_cursor_a_connection_keeps_serves_on_after_a_failed_statement(db: Database) -> None:
    query = DriverStatement(select(_ITEMS.c.id).where(_ITEMS.c.version == bindparam("v")))
    with db.reading() as connection:
        assert query.first(connection, {"v": 3}) == ("a",)
        with pytest.raises(DBAPIError, match="integer"):
            query.first(connection, {"v": "three"})  # refused by the server, not the driver
        assert query.first(connection, {"v": 1}) == ("b",)
        assert query.first(connection, {"v": 2}) is None


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_lost_connection_is_invalidated_and_replaced(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_SECONDS", 3600.0)  # no ping: the read finds it
    query = DriverStatement(select(_ITEMS.c.id).where(_ITEMS.c.id == bindparam("id")))
    with db.reading() as connection:
        lost = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with psycopg.connect(libpq_dsn(db.url), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (lost,))
    with db.reading() as connection:
        with pytest.raises(DBAPIError) as failed:
            query.first(connection, {"id": "a"})
        assert failed.value.connection_invalidated
        assert connection.invalidated
    with db.reading() as connection:  # the pool opened another in its place
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != lost
        assert query.first(connection, {"id": "a"}) == ("a",)


_ADD = DriverStatement(insert(_ITEMS))
_SET_VERSION = DriverStatement(
    update(_ITEMS).where(_ITEMS.c.id == bindparam("who")).values(version=bindparam("to"))
)
_VERSION = DriverStatement(select(_ITEMS.c.version).where(_ITEMS.c.id == bindparam("id")))


def _item(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "owner": "o1", "other": None, "version": 1, "made": datetime.now(UTC)}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_deferred_sends_go_in_order_with_the_next_statement(db: Database) -> None:
    with db.engine.begin() as connection, deferred_sends(connection) as deferred:
        assert deferred
        _ADD.send(connection, _item("s"))
        _SET_VERSION.send(connection, {"who": "s", "to": 5})
        assert _VERSION.first(connection, {"id": "s"}) == (5,)  # sees both, in order
        _SET_VERSION.send(connection, {"who": "s", "to": 6})
        assert _SET_VERSION.run(connection, {"who": "s", "to": 7}) == 1  # its own count
        _SET_VERSION.send(connection, {"who": "s", "to": 8})  # sent as the block ends
    with db.reading() as connection:
        assert _VERSION.first(connection, {"id": "s"}) == (8,)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_statement_of_sqlalchemys_own_runs_after_what_is_queued(db: Database) -> None:
    with db.engine.begin() as connection, deferred_sends(connection):
        _ADD.send(connection, _item("q"))
        counted = connection.execute(select(func.count()).select_from(_ITEMS)).scalar_one()
        assert counted == 3  # a, b and q
        _ADD.send(connection, _item("r"))
        with connection.begin_nested():  # a SAVEPOINT is SQLAlchemy's own statement too
            _SET_VERSION.send(connection, {"who": "r", "to": 4})
        assert connection.execute(select(_ITEMS.c.version).where(_ITEMS.c.id == "r")).scalar() == 4


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_deferred_send_that_fails_raises_where_it_is_sent(db: Database) -> None:
    with db.engine.connect() as connection:
        with connection.begin(), deferred_sends(connection):
            _ADD.send(connection, _item("a"))  # a's key is taken: refused, but not yet
            _ADD.send(connection, _item("t"))  # not run once one before it failed
            with pytest.raises(IntegrityError):
                _VERSION.first(connection, {"id": "t"})

        def the_same_twice() -> None:
            with deferred_sends(connection):
                _ADD.send(connection, _item("u"))
                _ADD.send(connection, _item("u"))

        with connection.begin(), pytest.raises(IntegrityError):  # raised as the block ends
            the_same_twice()
        with connection.begin():  # the connection serves on, with nothing queued
            assert _VERSION.first(connection, {"id": "a"}) == (3,)
            _ADD.send(connection, _item("v"))
    with db.reading() as connection:
        found = connection.execute(select(_ITEMS.c.id).order_by(_ITEMS.c.id)).scalars().all()
    assert found == ["a", "b", "v"]


def test_outside_the_block_and_on_sqlite_a_send_runs_at_once(db: Database) -> None:
    with db.engine.connect() as connection:
        with connection.begin(), pytest.raises(IntegrityError):
            _ADD.send(connection, _item("a"))
        with connection.begin(), deferred_sends(connection) as deferred:
            assert deferred is (not db.is_sqlite)
            if db.is_sqlite:
                with pytest.raises(IntegrityError):
                    _ADD.send(connection, _item("a"))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_what_is_queued_is_dropped_when_the_block_raises(db: Database) -> None:
    with db.engine.connect() as connection:

        def changing_its_mind() -> None:
            with connection.begin(), deferred_sends(connection):
                _ADD.send(connection, _item("w"))
                raise ValueError("changed its mind")

        with pytest.raises(ValueError, match="changed its mind"):
            changing_its_mind()
        with connection.begin():
            _ADD.send(connection, _item("x"))  # at once: no block is open
            assert _VERSION.first(connection, {"id": "w"}) is None
    with db.reading() as connection:
        assert _VERSION.first(connection, {"id": "x"}) == (1,)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_lost_before_the_queue_is_sent_is_invalidated(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_SECONDS", 3600.0)  # no ping: the send finds it
    with db.reading() as connection:
        lost = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()

    def send_on_a_lost_connection() -> None:
        with db.engine.connect() as connection, deferred_sends(connection):
            with psycopg.connect(libpq_dsn(db.url), autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (lost,))
            _ADD.send(connection, _item("y"))

    with pytest.raises(DBAPIError) as failed:
        send_on_a_lost_connection()
    assert failed.value.connection_invalidated
    with db.reading() as connection:  # the pool opened another in its place
        assert _VERSION.first(connection, {"id": "a"}) == (3,)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_statements_read_later_go_together_and_each_gives_its_own_row(db: Database) -> None:
    added = DriverStatement(
        insert(_ITEMS).returning(_ITEMS.c.id, _ITEMS.c.version),
        columns=("id", "owner", "version", "made"),
    )
    with db.engine.begin() as connection, deferred_sends(connection):
        reads = [
            added.first_later(connection, {**_item(item_id), "version": n})
            for n, item_id in enumerate(["l1", "l2", "l3"], start=1)
        ]
        _SET_VERSION.send(connection, {"who": "l1", "to": 9})  # queued after them
        assert reads[1]() == ("l2", 2)  # sends the queue, reads its own row
        assert reads[0]() == ("l1", 1)  # already sent: its row, as it was inserted
        assert reads[2]() == ("l3", 3)
        assert _VERSION.first(connection, {"id": "l1"}) == (9,)
        with pytest.raises(IntegrityError):  # a key taken: raised where it is read
            added.first_later(connection, {**_item("l1"), "version": 1})()


def test_a_statement_read_later_outside_the_block_runs_at_once(db: Database) -> None:
    with db.engine.connect() as connection, connection.begin():
        read = _VERSION.first_later(connection, {"id": "a"})
        _SET_VERSION.run(connection, {"who": "a", "to": 4})
        assert read() == (3,)  # read before the update
