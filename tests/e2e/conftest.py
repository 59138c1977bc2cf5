"""Real processes: the `loansuite` command serving each service on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import SERVICES, Processes
from tests.support import SERVICE_SECRET, Databases, free_port


@pytest.fixture
def processes(backend: str, tmp_path: Path) -> Iterator[Processes]:
    """auth, audit and loans as processes over fresh databases of the backend."""
    databases = Databases(backend, tmp_path)
    ports = {service: free_port() for service in SERVICES}
    env = {
        **os.environ,
        "LOANSUITE_DATA_DIR": str(tmp_path),
        "LOANSUITE_SERVICE_SECRET": SERVICE_SECRET,
        "LOANSUITE_USER_CACHE_TTL_SECONDS": "1",
        "LOANSUITE_GRACE_SECONDS": "2",  # an open Health.Watch stream holds the full grace
        **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()},
        **{f"LOANSUITE_{s.upper()}_DATABASE_URL": databases.new(s) for s in SERVICES},
    }
    suite = Processes(tmp_path, env, ports)
    try:
        suite.start_all()
        yield suite
    finally:
        suite.stop_all()
        databases.drop_all()
