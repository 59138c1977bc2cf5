"""Fixtures shared by every test: real databases on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

# The PostgreSQL server on this machine; tests create their own databases and drop them.
PG_ADMIN_DSN = os.environ.get("LOANSUITE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def new_database_url(backend: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh, empty database per call, dropped after the test."""
    created: list[str] = []

    def make(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{name}.db'}"
        database = f"loansuite_test_{name}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        created.append(database)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"

    yield make
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        for database in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
