"""Auth test fixtures: a real auth server on port 0, over SQLite and PostgreSQL.

``auth`` is a fresh server and database per test. ``shared_auth`` lives for a
test module (once per backend) with a few users registered once, because
Argon2 costs tens of milliseconds per hash by design.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb

from services.shared.settings import Settings
from tests.auth.support import AuthService, Person, auth_settings, running
from tests.support import BACKENDS, Databases


@pytest.fixture
def fresh_settings(tmp_path: Path, new_database_url: Callable[[str], str]) -> Settings:
    """Settings for auth on an empty database of the test's backend."""
    return auth_settings(tmp_path, new_database_url("auth"))


@pytest.fixture
def auth(fresh_settings: Settings) -> Iterator[AuthService]:
    """A fresh auth server and database for one test."""
    with running(fresh_settings) as service:
        yield service


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One auth database per test module and backend, dropped afterwards."""
    databases = Databases(str(request.param), tmp_path_factory.mktemp("auth-db"))
    yield databases.new("auth")
    databases.drop_all()


@pytest.fixture(scope="module")
def shared_auth(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthService]:
    """An auth server shared by the tests of one module: reuse its users, don't alter them."""
    settings = auth_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with running(settings) as service:
        yield service


@pytest.fixture(scope="module")
def borrower(shared_auth: AuthService) -> Person:
    return shared_auth.person(pb.USER_ROLE_BORROWER)


@pytest.fixture(scope="module")
def lender(shared_auth: AuthService) -> Person:
    return shared_auth.person(pb.USER_ROLE_LENDER)


@pytest.fixture(scope="module")
def admin(shared_auth: AuthService) -> Person:
    return shared_auth.admin()
