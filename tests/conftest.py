"""Fixtures shared by every test: real databases and real in-process servers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import BACKENDS, POSTGRES, Databases, Suite, start_suite

# The processes tests start take free HTTP side ports (never the fixed 9451-9453 that
# another run may hold) and stop without a drain window, unless a test sets them.
for _service in ("AUTH", "LOANS", "AUDIT"):
    os.environ.setdefault(f"LOANSUITE_{_service}_HTTP_PORT", "0")
os.environ.setdefault("LOANSUITE_DRAIN_SECONDS", "0")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def new_database_url(backend: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh, empty database per call, dropped after the test."""
    databases = Databases(backend, tmp_path)
    yield databases.new
    databases.drop_all()


@pytest.fixture(scope="module", params=BACKENDS)
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Suite]:
    """One running suite per test module and backend."""
    directory = tmp_path_factory.mktemp(f"suite-{request.param}")
    databases = Databases(str(request.param), directory)
    running, servers = start_suite(str(request.param), directory, databases)
    try:
        yield running
    finally:
        for channel in running.channels.values():
            channel.close()
        for server in servers:
            server.stop(0)
        databases.drop_all()


def pytest_sessionfinish() -> None:
    """Stop the embedded PostgreSQL, if this session started one."""
    POSTGRES.stop()
