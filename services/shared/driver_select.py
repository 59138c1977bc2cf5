"""A prebuilt SELECT run on the driver's own cursor, for the hottest single-row reads.

``Connection.execute`` of a prebuilt statement still sets up an execution
context, looks up the compiled form in its cache, processes parameters and
wraps the result: about 20 µs on SQLite for a row of two columns, where the
driver itself takes 4 µs. A ``DriverSelect`` compiles its statement once per
dialect and runs the SQL text on the connection's DBAPI cursor.

It takes only what needs none of SQLAlchemy's processing on the way, and says
so when built: named parameters given at each call, and columns whose values
the driver returns as they are (text and integers; not dates, which SQLite
keeps as text). A driver error is raised as SQLAlchemy's own ``DBAPIError``
(so callers handle one family of errors), and a lost connection is
invalidated, as ``Connection.execute`` would.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Dialect, Select
from sqlalchemy.exc import DBAPIError

__all__ = ["DriverSelect"]

_Compiled = tuple[str, Callable[[Mapping[str, Any]], Any]]


class DriverSelect:
    """One SELECT, compiled per dialect on first use and run on the DBAPI cursor."""

    def __init__(self, statement: Select[Any]) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}  # by dialect name

    def first(self, connection: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of the statement with these parameters, as a tuple, or None."""
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _compile(self._statement, dialect)
        sql, arguments = compiled
        driver_connection = connection.connection.driver_connection
        cursor = driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, arguments(params))
            row = cursor.fetchone()
        except dialect.loaded_dbapi.Error as exc:
            lost = dialect.is_disconnect(exc, driver_connection, cursor)
            if lost:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                sql,
                dict(params),
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=dialect,
            ) from exc
        finally:
            cursor.close()
        return None if row is None else tuple(row)


def _as_given(params: Mapping[str, Any]) -> Mapping[str, Any]:
    return params


def _compile(statement: Select[Any], dialect: Dialect) -> _Compiled:
    """The statement's SQL for dialect and how its arguments are made from named ones.

    Refuses what SQLAlchemy would have to process per call: a parameter with a value
    of its own or a conversion on the way in, a column with one on the way out.
    """
    compiled = statement.compile(dialect=dialect)
    for parameter in compiled.binds.values():
        if not parameter.required or parameter.expanding:
            raise TypeError(f"{parameter.key}: only plain named parameters, given at each call")
        if parameter.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            raise TypeError(f"{parameter.key}: its type converts values on the way in")
    for column in statement.selected_columns:
        if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
            raise TypeError(f"{column.key}: its type converts values on the way out")
    if not dialect.positional:  # the driver takes the names themselves
        return compiled.string, _as_given
    names = compiled.positiontup or []
    if len(names) == 1:
        name = names[0]
        return compiled.string, lambda params: (params[name],)
    return compiled.string, operator.itemgetter(*names)
