"""Database engine and transactions: SQLite embedded, PostgreSQL in production.

Servicers open transactions through ``Database.submit()`` (a write in its own
savepoint of a group-committed transaction, group_commit.py), ``Database.write()``
(a transaction of its own) and ``Database.read()``; use cases receive the
session and never commit. What one unary RPC changes commits together, and
most RPCs open only that one write (or one read). One deliberate exception:
Login reads the account, verifies the password with no transaction open
(Argon2 takes tens of milliseconds, too long to hold SQLite's write lock) and
only then writes. Streams open one transaction per batch or per poll.

On SQLite, pysqlite's own transaction handling is switched off so that the
``BEGIN`` we emit is the one that runs, and writers use ``BEGIN IMMEDIATE`` to
take the lock up front. Writers are also serialized inside the process: SQLite
allows one writer at a time anyway, and waiting on a Python lock is far
cheaper than the busy handler's sleep-and-retry under many threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import Connection, Engine, FromClause, Table, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from services.shared.driver_statement import send_before_statements
from services.shared.files import create_private_file, private_directory, private_file
from services.shared.group_commit import GroupCommit

__all__ = [
    "Database",
    "MappedClass",
    "database_url",
    "hold_read_connections",
    "libpq_dsn",
    "table_of",
]

T = TypeVar("T")

# A connection unused this long is pinged before it is used again, so a database
# restarted meanwhile fails no call; one in steady use is not, which on PostgreSQL
# saves a round trip per read and per group commit.
PING_AFTER_SECONDS = 1.0
_holding = threading.local()  # .on: this thread keeps one read connection per database


def hold_read_connections() -> None:
    """Let this thread keep its single-read connection of each database between reads.

    For an event loop's thread, where reads run one after another and never overlap:
    a read then skips the pool's checkout, reset and return. A pool thread must not
    call this: each would keep a connection of its own for good.
    """
    _holding.on = True


_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: a committed transaction survives power loss, at one more fsync per commit.
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=10000",
    # After a checkpoint, cut the write-ahead log back to 64 MiB: a burst that grew
    # it does not keep the disk for good (docs/OPERATIONS.md).
    "PRAGMA journal_size_limit=67108864",
    "PRAGMA foreign_keys=ON",
)
# Files SQLite keeps beside a database; each holds its data, so each is private.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


@dataclass(slots=True)
class _Held:
    """A read connection a thread keeps, and when it last finished a read."""

    connection: Connection
    used: float


class Database:
    """One service's database: an engine, its transactions and commit hooks."""

    def __init__(self, url: str | URL, *, pool_size: int = 10) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url, pool_size)
        else:
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=2 * pool_size)
            _ping_when_idle(self.engine)
            send_before_statements(self.engine)
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        # One statement is its own consistent snapshot: a single-statement read needs no
        # BEGIN and ROLLBACK around it (two more round trips on PostgreSQL).
        self._single_reads = self.engine.execution_options(
            **({"sqlite_begin": None} if self.is_sqlite else {"isolation_level": "AUTOCOMMIT"})
        )
        self._writes = sessionmaker(writer, expire_on_commit=False)
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        )
        self._after_commit: list[Callable[[Session], None]] = []
        # SQLite: a statement takes microseconds, and on the loop it need not win the GIL
        # back from it after each one (see group_commit.py).
        self._group = GroupCommit(self.write, writes_on_loop=self.is_sqlite)
        self._held: dict[int, _Held] = {}  # by thread id

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: commits when the block ends, rolls back on an exception."""
        with self._write_lock:
            with self._writes.begin() as session:
                yield session
            # Here, not in the session's after_commit event: that one also fires when a
            # SAVEPOINT is released, long before anything is durable.
            for callback in self._after_commit:
                callback(session)

    def submit(self, work: Callable[[Session], T]) -> T:
        """Run work in its own savepoint of a group-committed write; return after the commit."""
        return self._group.run(work)

    def writes_waiting(self) -> int:
        """How many submitted writes wait for the next batch."""
        return self._group.waiting()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction; loaded objects stay usable after it ends."""
        session = self._reads()
        try:
            session.begin()
            yield session
        finally:
            session.close()  # rolls back without expiring what was loaded

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A pooled connection for ONE read statement, which is its own snapshot.

        What a read loads through the ORM costs several times more than the row: a
        read that needs no unit of work (GetLoan, ListLoans) runs one prebuilt Core
        statement here, with no transaction around it. Several statements that must
        agree with each other belong in ``read()``. On a thread that holds its read
        connections (``hold_read_connections``) the connection is that thread's own.
        """
        if not getattr(_holding, "on", False):
            with self._single_reads.connect() as connection:
                yield connection
            return
        held = self._held_connection()
        kept = False
        try:
            yield held.connection
            kept = True
        except Exception as exc:
            # A refusal raised after the read leaves the connection as it was; a failed
            # statement may not, so the next read takes another.
            kept = not isinstance(exc, SQLAlchemyError)
            raise
        finally:
            if kept:
                held.used = time.monotonic()
            else:
                self._held.pop(threading.get_ident(), None)
                held.connection.close()

    def _held_connection(self) -> _Held:
        """This thread's kept read connection: pinged if idle a while, new if lost."""
        thread = threading.get_ident()
        held = self._held.get(thread)
        if held is not None:
            if time.monotonic() - held.used < PING_AFTER_SECONDS or _answers_ping(
                self.engine, held.connection.connection.dbapi_connection
            ):
                return held
            held.connection.invalidate()  # the pool opens a new one in its place
            held.connection.close()
        held = self._held[thread] = _Held(self._single_reads.connect(), time.monotonic())
        return held

    def on_commit(self, callback: Callable[[Session], None]) -> None:
        """Run callback after each committed write transaction (e.g. to wake a relay)."""
        self._after_commit.append(callback)

    def dispose(self) -> None:
        """Close every connection; the kept read connections first (their threads have
        stopped reading by now), after the last batch of writes."""
        self._group.close()
        for held in list(self._held.values()):
            held.connection.close()
        self._held.clear()
        self.engine.dispose()


class MappedClass(Protocol):
    """A declaratively mapped class, as far as Core statements need it: its table."""

    __table__: ClassVar[FromClause]


def table_of(model: type[MappedClass]) -> Table:
    """The Core table of a mapped class, for statements built once and run on a connection."""
    table = model.__table__
    if not isinstance(table, Table):  # narrows for insert(): declarative maps to a Table
        raise TypeError(f"{model} is not mapped to a table")
    return table


def libpq_dsn(url: str | URL) -> str:
    """A PostgreSQL URL as libpq (psycopg.connect) takes it: no driver name, password kept."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(server_url: str | URL, database: str) -> str:
    """The SQLAlchemy URL of another database on the PostgreSQL server that server_url names."""
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)


def _sqlite_engine(url: URL, pool_size: int) -> Engine:
    if url.database and url.database != ":memory:":
        _private_sqlite_files(Path(url.database))
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        pool_size=pool_size,
        max_overflow=2 * pool_size,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode is not None:  # None: a single-statement read, in SQLite's autocommit mode
            conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before handing it out only if it sat unused a while.

    ``pool_pre_ping`` pings on every checkout: a round trip for every read on
    PostgreSQL. A connection back from a call a moment ago is alive as far as a ping
    could tell. A failed ping raises DisconnectionError, on which the pool replaces
    the connection (and, as for any disconnect, the idle ones opened before it).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in")
        if checked_in is None or time.monotonic() - checked_in < PING_AFTER_SECONDS:
            return  # new, or in use a moment ago
        if not _answers_ping(engine, dbapi_connection):
            raise DisconnectionError("the connection was lost while idle")


def _answers_ping(engine: Engine, dbapi_connection: Any) -> bool:
    """Whether the driver connection answers the dialect's ping (SELECT 1 and the like)."""
    try:
        return dbapi_connection is not None and bool(engine.dialect.do_ping(dbapi_connection))
    except Exception:
        return False


def _private_sqlite_files(path: Path) -> None:
    """The database's directory 0700 and its files 0600, whatever the umask.

    The file is made 0600 before SQLite first opens it: SQLite gives the -wal and
    -shm files it creates the database file's own mode. Files left looser by an
    older version are tightened (or refused when not ours, see files.py).
    """
    private_directory(path.parent)
    create_private_file(path)
    for suffix in _SQLITE_COMPANIONS:
        private_file(path.with_name(path.name + suffix))
