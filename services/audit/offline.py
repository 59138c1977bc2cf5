"""`loansuite audit verify`: the chain checked straight from the database, with no server."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from services.audit import use_cases
from services.audit.chain import Head, Verification
from services.audit.heads import read_last_head
from services.audit.schemas import parse_head
from services.shared.db import Database
from services.shared.errors import ValidationError

__all__ = [
    "MissingHeadError",
    "head_argument",
    "open_database",
    "published_head",
    "verify_database",
]


class MissingHeadError(ValueError):
    """Nothing trustworthy to check the log's end against; the message says what to pass."""


def head_argument(text: str) -> Head:
    """Parse SEQ:HASH as given on the command line; ValueError says what is wrong."""
    sequence, _, hash_ = text.partition(":")
    try:
        return parse_head(int(sequence), hash_)
    except ValueError:
        raise ValueError("expected SEQ:HASH, e.g. 42:<64 hex digits>") from None
    except ValidationError as exc:
        problems = (f"{v.field.rsplit('.', 1)[-1]} {v.description}" for v in exc.field_violations)
        raise ValueError("; ".join(problems)) from None


def open_database(database_url: str) -> Database:
    """The audit database at database_url for one reader; never creates a missing SQLite file."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        # Opening a missing SQLite file would create an empty log, which verifies intact.
        raise FileNotFoundError(f"no audit database at {url.database}")
    return Database(url, pool_size=1)


def published_head(
    expected_head: Head | None, heads_path: Path, *, database_apart: bool, data_dir_named: bool
) -> Head | None:
    """The head to verify against: the one given, else the last one of the heads file.

    A database named apart from the data directory (by URL) is checked only against a
    head given or a heads file in a data directory named too: the default ./var would
    hold another deployment's heads, and a log checked against them reads TRUNCATED.
    """
    if expected_head is not None:
        return expected_head
    if not database_apart:
        return read_last_head(heads_path)
    if not data_dir_named:
        raise MissingHeadError(
            "a database URL needs --expect-head SEQ:HASH, or --data-dir DIR "
            "(or LOANSUITE_DATA_DIR) where that audit service publishes its heads"
        )
    head = read_last_head(heads_path)
    if head is None:
        raise MissingHeadError(f"no published head in {heads_path}; pass --expect-head SEQ:HASH")
    return head


def verify_database(
    database_url: str, *, heads_path: Path, expected_head: Head | None
) -> Verification:
    """Verify the log at database_url against expected_head, else the heads file's last line."""
    db = open_database(database_url)
    try:
        with db.read() as session:
            return use_cases.verify_chain(
                session, expected_head=expected_head or read_last_head(heads_path)
            )
    finally:
        db.dispose()
