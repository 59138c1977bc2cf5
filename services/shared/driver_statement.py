"""Prebuilt statements run on the driver's own cursor, for the hottest paths.

``Connection.execute`` of a prebuilt statement still sets up an execution
context, looks up the compiled form in its cache, processes parameters and
wraps the result: about 20 µs on SQLite for a row of two columns, where the
driver itself takes 4 µs. A ``DriverStatement`` compiles its statement once
per dialect and runs the SQL text on the connection's DBAPI cursor, inside
whatever transaction the connection is in. On PostgreSQL the connection keeps
that cursor for the next statement (in SQLAlchemy's per-connection ``info``,
which goes with the connection when it is closed or replaced).

What SQLAlchemy would do on the way is done here from lists made once: a
parameter or a column whose type converts values (a date SQLite keeps as text,
an exact decimal, an enum) goes through the type's own processor for the
dialect, so a row holds what ``Connection.execute`` gives and the database
receives what it would. A column's processor can depend on the type the
driver reports for it (psycopg's numeric types), so the processors are looked
up from the first result's description. Rows are named tuples of the
returned columns' keys.

Parameters are named and given at each call, or carried by the statement
itself (a LIMIT, a literal), as built. An expanding parameter, one whose value
is computed at execution, or an INSERT column left to a Python-side default is
refused when first compiled. A driver error is raised as
SQLAlchemy's own ``DBAPIError`` (so callers handle one family of errors), and
a lost connection is invalidated, as ``Connection.execute`` would.

A statement run for its effect alone (``send``) need not wait for its answer.
Inside ``deferred_sends`` on PostgreSQL, sends are queued on the connection
and go to the server with the next statement, all in one round trip (psycopg's
pipeline mode): before the next ``DriverStatement`` runs, before any statement
SQLAlchemy runs on the connection (an engine made ready with
``send_before_statements``), and when the block ends. An error of a queued
send is raised there. A statement whose row is read later (``first_later``)
is queued the same way on a cursor of its own: the first read of a statement
still queued sends the queue. Outside such a block, and on SQLite (whose
statements make no round trip), each runs at once.
"""

from __future__ import annotations

import collections
import contextlib
import operator
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Dialect, Engine, Executable, ReturnsRows, event
from sqlalchemy.exc import DBAPIError, StatementError

__all__ = ["DriverRow", "DriverStatement", "deferred_sends", "send_before_statements"]

Processor = Callable[[Any], Any]
# A named tuple of the returned columns' keys: its attributes are known at run time only.
DriverRow = Any
# Drivers whose cursors hold nothing on the server between calls (psycopg's client-side
# cursors fetch every row at once), so that a connection keeps one: making one costs psycopg
# about 15 µs. A SQLite cursor left open would keep its statement, and so its snapshot.
_KEEPS_CURSORS = frozenset({"psycopg"})
_CURSOR = "loansuite.driver_statement.cursor"  # in the connection's info: its kept cursor
_QUEUED = "loansuite.driver_statement.queued"  # in the connection's info: sends not yet made
_SPARE = "loansuite.driver_statement.spare"  # its cursors for statements read later
_LENT = "loansuite.driver_statement.lent"  # how many of them the open block uses
# Drivers with a pipeline mode, in which statements go without waiting for each answer.
_PIPELINES = frozenset({"psycopg"})
# The dialects of engines whose connections send what is queued before any statement of
# SQLAlchemy's own. An engine's dialect is its own, and shared by its execution_options()
# copies, which share its event hooks too.
_READY: weakref.WeakSet[Dialect] = weakref.WeakSet()
_Arguments = Callable[[Mapping[str, Any]], Any]
_MakeRow = Callable[[Sequence[Any]], tuple[Any, ...]]
R = TypeVar("R")


class DriverStatement:
    """One statement, compiled per dialect on first use and run on the DBAPI cursor.

    ``columns`` names the columns an INSERT or UPDATE is given at each call (by
    default, those its own ``values()`` name).
    """

    def __init__(self, statement: Executable, *, columns: Collection[str] | None = None) -> None:
        self.statement = statement
        self._columns = list(columns) if columns is not None else None
        self._returned: list[Any] = (
            list(statement.exported_columns) if isinstance(statement, ReturnsRows) else []
        )
        keys = [column.key or "" for column in self._returned]
        if "" in keys:
            raise TypeError("every returned column needs a name")
        row_type = collections.namedtuple("Row", keys)  # type: ignore[misc]  # names known at run time
        self._row: Callable[..., tuple[Any, ...]] = row_type._make
        self._plans: dict[str, _Plan] = {}  # by dialect name

    def first(self, connection: Connection, params: Mapping[str, Any]) -> DriverRow | None:
        """The first row the statement returns with these parameters, or None."""
        return self._execute(connection, params, _first_row)

    def all(self, connection: Connection, params: Mapping[str, Any]) -> list[DriverRow]:
        """Every row the statement returns with these parameters."""
        return self._execute(
            connection, params, lambda cursor, make: [*map(make, cursor.fetchall())]
        )

    def run(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Run the statement with these parameters; how many rows it changed."""
        count: int = self._execute(connection, params, lambda cursor, _make: cursor.rowcount)
        return count

    def send(self, connection: Connection, params: Mapping[str, Any]) -> None:
        """Run the statement with these parameters for its effect alone.

        Inside ``deferred_sends`` it is queued (see the module's notes): its error, if
        any, is raised by the statement that sends it.
        """
        queued: list[_Queued] | None = connection.info.get(_QUEUED)
        if queued is None:
            self._execute(connection, params, _nothing)
        else:
            plan = self._plan(connection.dialect)
            queued.append(_Queued(plan.sql, plan.arguments(params)))

    def first_later(
        self, connection: Connection, params: Mapping[str, Any]
    ) -> Callable[[], DriverRow | None]:
        """The statement's first row with these parameters, read when the returned
        callable is called.

        Inside ``deferred_sends`` the statement is queued on a cursor of its own, so
        that several go to the server together; the first call of a callable whose
        statement is still queued sends the queue. Elsewhere it runs at once.
        """
        queued: list[_Queued] | None = connection.info.get(_QUEUED)
        if queued is None:
            row = self.first(connection, params)
            return lambda: row
        dialect = connection.dialect
        plan = self._plan(dialect)
        statement = _Queued(plan.sql, plan.arguments(params), _spare_cursor(connection))
        queued.append(statement)

        def read() -> DriverRow | None:
            if not statement.sent:
                _send_queued(connection)
            cursor = statement.cursor
            try:  # fetched first: a statement the pipeline did not run has no description
                found = cursor.fetchone()
            except dialect.loaded_dbapi.Error as exc:
                raise _as_sqlalchemy(connection, cursor, exc, plan.sql, dict(params)) from exc
            make = plan.make or self._learn(plan, dialect, cursor.description)
            return None if found is None else make(found)

        return read

    def _execute(
        self,
        connection: Connection,
        params: Mapping[str, Any],
        fetch: Callable[[Any, _MakeRow], R],
    ) -> R:
        """What fetch takes from the cursor once the statement ran, given how rows are made."""
        dialect = connection.dialect
        plan = self._plan(dialect)
        arguments = plan.arguments(params)
        kept = dialect.driver in _KEEPS_CURSORS
        if kept:
            cursor = _kept_cursor(connection)
            queued: list[_Queued] | None = connection.info.get(_QUEUED)
        else:
            cursor, queued = connection.connection.driver_connection.cursor(), None  # type: ignore[union-attr]
        try:
            if queued:  # they go first, in the same round trip
                statements = [*queued, _Queued(plan.sql, arguments)]
                queued.clear()
                _pipelined(connection, cursor, statements)
            else:
                cursor.execute(plan.sql, arguments)
            return fetch(cursor, plan.make or self._learn(plan, dialect, cursor.description))
        except dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemy(connection, cursor, exc, plan.sql, dict(params)) from exc
        finally:
            if not kept:
                cursor.close()

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _compile(self.statement, dialect, self._columns)
        return plan

    def _learn(self, plan: _Plan, dialect: Dialect, description: Sequence[Any] | None) -> _MakeRow:
        """How rows are made, from the types the driver reports for the columns.

        A statement that names no columns to return has no rows to make, whatever the
        dialect returns of its own (PostgreSQL's INSERT returns the new primary key).
        """
        if not self._returned:
            description = ()
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(self._returned, description or (), strict=True)
        ]
        plan.make = _maker(self._row, processors)
        return plan.make


def send_before_statements(engine: Engine) -> None:
    """Make the engine's connections send what ``deferred_sends`` queued before any
    statement of SQLAlchemy's own (an ORM query, a SAVEPOINT), so that it runs in order."""
    dialect = engine.dialect
    if dialect.driver not in _PIPELINES or not dialect.loaded_dbapi.Pipeline.is_supported():
        return  # a libpq before 14 has no pipeline mode: sends run at once
    if dialect not in _READY:
        event.listen(engine, "before_cursor_execute", _send_queued)
        _READY.add(dialect)


@contextlib.contextmanager
def deferred_sends(connection: Connection) -> Iterator[bool]:
    """Within the block, ``send`` queues its statement on the connection; what is still
    queued is sent when the block ends (and raises there), or dropped if it raises.

    Sends run at once on a driver without a pipeline mode, or on an engine not made
    ready with ``send_before_statements``. The block is given whether they are queued.
    """
    info = connection.info  # the connection's own: still at hand if it is lost meanwhile
    if connection.dialect not in _READY or _QUEUED in info:
        yield _QUEUED in info
        return
    info[_QUEUED] = []
    try:
        yield True
        _send_queued(connection)
    finally:
        del info[_QUEUED]
        info.pop(_LENT, None)  # its spare cursors serve the next block


class _Queued:
    """A statement waiting to be sent; one whose answer is read later has its own cursor."""

    __slots__ = ("arguments", "cursor", "sent", "sql")

    def __init__(self, sql: str, arguments: Any, cursor: Any = None) -> None:
        self.sql = sql
        self.arguments = arguments
        self.cursor = cursor
        self.sent = False


def _send_queued(connection: Connection, *_event: Any) -> None:
    """Send what is queued on the connection, if anything (also SQLAlchemy's event hook)."""
    queued: list[_Queued] | None = connection.info.get(_QUEUED)
    if queued:
        statements = list(queued)
        queued.clear()
        _pipelined(connection, _kept_cursor(connection), statements)


def _spare_cursor(connection: Connection) -> Any:
    """A cursor of the connection's own for one statement of a deferred_sends block: the
    connection keeps them, one for each such statement of a block, for the next block."""
    info = connection.info
    spare: list[Any] = info.setdefault(_SPARE, [])
    lent: int = info.get(_LENT, 0)
    if lent == len(spare):
        driver_connection: Any = connection.connection.driver_connection
        spare.append(driver_connection.cursor())
    info[_LENT] = lent + 1
    return spare[lent]


def _kept_cursor(connection: Connection) -> Any:
    cursor = connection.info.get(_CURSOR)
    if cursor is None:
        driver_connection: Any = connection.connection.driver_connection
        cursor = connection.info[_CURSOR] = driver_connection.cursor()
    return cursor


def _pipelined(connection: Connection, cursor: Any, statements: list[_Queued]) -> None:
    """Every statement in one round trip, in order; the cursor holds the last one's result.

    The first that fails is raised, and the rest are not run.
    """
    driver_connection: Any = connection.connection.driver_connection
    try:
        with driver_connection.pipeline():
            for statement in statements:
                (statement.cursor or cursor).execute(statement.sql, statement.arguments)
                statement.sent = True
    except connection.dialect.loaded_dbapi.Error as exc:
        sql = "; ".join(statement.sql for statement in statements)
        arguments = [statement.arguments for statement in statements]
        raise _as_sqlalchemy(connection, cursor, exc, sql, arguments) from exc


def _as_sqlalchemy(
    connection: Connection, cursor: Any, exc: Any, sql: str, params: Any
) -> StatementError:
    """A driver error as SQLAlchemy's own; a lost connection is invalidated."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(exc, connection.connection.driver_connection, cursor)
    if lost:
        connection.invalidate(exc)
    error: StatementError = DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
    )
    return error


def _first_row(cursor: Any, make: _MakeRow) -> DriverRow | None:
    found = cursor.fetchone()
    return None if found is None else make(found)


def _nothing(_cursor: Any, _make: _MakeRow) -> None:
    return None


class _Plan:
    """A statement's SQL for one dialect, its arguments, and (once known) its row maker."""

    __slots__ = ("arguments", "make", "sql")

    def __init__(self, sql: str, arguments: _Arguments) -> None:
        self.sql = sql
        self.arguments = arguments
        self.make: _MakeRow | None = None


class _Bound(NamedTuple):
    name: str
    processor: Processor | None


def _compile(statement: Executable, dialect: Dialect, columns: list[str] | None) -> _Plan:
    """The statement's SQL for dialect and how its arguments are made from named ones.

    A value the statement carries itself (a LIMIT, a literal) is taken as built.
    """
    compiled = statement.compile(dialect=dialect, column_keys=columns)  # type: ignore[attr-defined]
    prefetched = [*compiled.insert_prefetch, *compiled.update_prefetch]
    if prefetched:
        raise TypeError(f"{prefetched[0].key}: left to a Python-side default; give it each call")
    processors: dict[str, Processor | None] = {}
    constants: dict[str, Any] = {}
    for name, parameter in compiled.binds.items():
        if parameter.expanding or parameter.literal_execute or parameter.callable is not None:
            raise TypeError(f"{parameter.key}: only plain named parameters and fixed values")
        processors[name] = parameter.type.dialect_impl(dialect).bind_processor(dialect)
        if not parameter.required:
            constants[name] = parameter.value
    names = compiled.positiontup if dialect.positional else list(processors)
    bound = [_Bound(name, processors[name]) for name in names or ()]
    arguments = _arguments(bound, positional=dialect.positional)
    if not constants:
        return _Plan(compiled.string, arguments)

    def with_constants(params: Mapping[str, Any]) -> Any:
        return arguments({**params, **constants})

    return _Plan(compiled.string, with_constants)


def _arguments(bound: list[_Bound], *, positional: bool) -> _Arguments:
    """From the named values of a call to what the driver takes, each converted by its type."""
    if any(processor is not None for _, processor in bound):
        if positional:
            return lambda params: [
                params[name] if processor is None else processor(params[name])
                for name, processor in bound
            ]
        return lambda params: {
            name: params[name] if processor is None else processor(params[name])
            for name, processor in bound
        }
    if not positional:  # the driver takes the names themselves
        return _as_given
    if len(bound) == 1:
        name = bound[0].name
        return lambda params: (params[name],)
    return operator.itemgetter(*(name for name, _ in bound))


def _maker(row: Callable[..., tuple[Any, ...]], processors: Sequence[Processor | None]) -> _MakeRow:
    if all(processor is None for processor in processors):
        return row
    pairs = list(enumerate(processors))
    return lambda values: row(
        [values[i] if processor is None else processor(values[i]) for i, processor in pairs]
    )


def _as_given(params: Mapping[str, Any]) -> Mapping[str, Any]:
    return params
