"""Fixtures shared by every test: real databases and real in-process servers."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import BACKENDS, POSTGRES, Databases, ServerModel, Suite, start_suite

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
    """One running suite per test module and backend, on the server model the module
    names as SERVER_MODEL (grpc.aio, the default, unless it does)."""
    directory = tmp_path_factory.mktemp(f"suite-{request.param}")
    databases = Databases(str(request.param), directory)
    model: ServerModel = getattr(request.module, "SERVER_MODEL", "aio")
    running, servers = start_suite(str(request.param), directory, databases, model)
    try:
        yield running
    finally:
        for channel in running.channels.values():
            channel.close()
        for server in servers:
            server.stop(0)
        databases.drop_all()


def pytest_sessionfinish() -> None:
    """Stop the embedded PostgreSQL, if this session started one (each worker its own)."""
    POSTGRES.stop()


# Parallel runs (pytest-xdist, see addopts in pyproject.toml): each worker runs whole
# test files, so that a module's suite starts once, as in a serial run.


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: a worker per CPU this process may use and one more, at most four.

    Much of the suite waits (for processes to start, for relays and polls), so one
    worker more than the CPUs keeps them busy. At most four: each worker starts its
    own embedded PostgreSQL, or opens its own pools on the LOANSUITE_TEST_PG server,
    whose connections are limited. PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return min(4, len(os.sched_getaffinity(0)) + 1)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker, put first the files that run longest, so no worker is left with one
    at the end: those with a `slow` test, then an `e2e` one, then those driven by
    Hypothesis, then the rest by their number of tests. A file's own order is kept;
    the workers hand out files in this order (--no-loadscope-reorder)."""
    if not hasattr(config, "workerinput"):
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def rank(tests: list[pytest.Item]) -> tuple[int, int]:
        module = getattr(tests[0], "module", None)
        if any(test.get_closest_marker("slow") for test in tests):
            kind = 0
        elif any(test.get_closest_marker("e2e") for test in tests):
            kind = 1
        elif module is not None and _uses_hypothesis(module):
            kind = 2
        else:
            kind = 3
        return kind, -len(tests)

    items[:] = [item for tests in sorted(files.values(), key=rank) for item in tests]


def _uses_hypothesis(module: ModuleType) -> bool:
    return any(
        (source := inspect.getmodule(value)) is not None
        and source.__name__.partition(".")[0] == "hypothesis"
        for value in vars(module).values()
    )
