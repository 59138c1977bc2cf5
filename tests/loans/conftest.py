"""Fixtures of the loan tests: the parties, a shared draft loan, journeys, streams, a key.

The accounts and the loan are module-scoped, as the ``suite`` they live in is:
one set per test module and backend. Tests that need a party nobody else
touches register their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.auth.wiring import create_admin
from tests.loans.factories import new_loan
from tests.loans.journey import Journey
from tests.loans.tokens import SigningKey, current_signing_key
from tests.loans.watching import Watches
from tests.support import PASSWORD, Account, Suite


@pytest.fixture(scope="module")
def borrower(suite: Suite) -> Account:
    """A borrower of its own organization, shared by the module."""
    return suite.register("BORROWER")


@pytest.fixture(scope="module")
def lender(suite: Suite) -> Account:
    """A lender of its own organization, shared by the module."""
    return suite.register("LENDER")


@pytest.fixture(scope="module")
def admin(suite: Suite) -> Account:
    """A platform admin, created as an operator does (never through Register), logged in."""
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    user_id = create_admin(suite.settings, email=email, password=PASSWORD, name="Ops Admin")
    session = suite.auth.Login(auth_pb.LoginRequest(email=email, password=PASSWORD)).session
    assert session.access_token
    return Account(email, user_id, session.user.organization.id, session.access_token)


@pytest.fixture(scope="module")
def loan(suite: Suite, borrower: Account, lender: Account) -> pb.Loan:
    """A DRAFT loan with its lender, shared by the tests that only add KPIs to it."""
    return new_loan(suite.loans, borrower, lender)


@pytest.fixture(scope="module")
def journey(suite: Suite, borrower: Account, lender: Account) -> Journey:
    """Loans of the module's borrower and lender, taken to the states the tests need."""
    return Journey(suite.loans, borrower, lender)


@pytest.fixture(scope="module")
def signing_key(suite: Suite) -> SigningKey:
    """The auth service's current signing key, to mint tokens with."""
    return current_signing_key(suite)


@pytest.fixture
def today(suite: Suite) -> Iterator[Suite]:
    """The suite, whose business date the test may move (business_date.on); put back after."""
    before = suite.today.day
    yield suite
    suite.today.day = before


@pytest.fixture
def watches() -> Iterator[Watches]:
    """Streams opened by the test, all cancelled when it ends."""
    opened = Watches()
    yield opened
    opened.cancel_all()
