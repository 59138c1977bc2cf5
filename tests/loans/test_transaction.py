"""Step 5 and 6: the loan and its audit event commit together or not at all."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import create_engine, text

from tests.support import Account, Suite

LOAN = pb.CreateLoanRequest(
    name="Wind Farm Loan",
    loan_type=pb.LOAN_TYPE_AMORTIZED,
    currency_code="GBP",
    principal_amount="800000.00",
    committed_amount="800000.00",
    drawn_amount="0.00",
    start_date="2027-06-01",
    maturity_date="2037-06-01",
)

# Real fault injection: the database itself refuses the outbox insert, after the loan insert.
FAIL_OUTBOX = {
    "sqlite": [
        """CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox_events
                  BEGIN SELECT RAISE(ABORT, 'injected outbox failure'); END"""
    ],
    "postgresql": [
        """CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected outbox failure'; END $$""",
        """CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox_events
           FOR EACH ROW EXECUTE FUNCTION fail_outbox()""",
    ],
}
HEAL_OUTBOX = {
    "sqlite": ["DROP TRIGGER fail_outbox"],
    "postgresql": ["DROP TRIGGER fail_outbox ON outbox_events", "DROP FUNCTION fail_outbox()"],
}


def execute(suite: Suite, statements: list[str]) -> None:
    engine = create_engine(suite.settings.database_url("loans"))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def count_loans(suite: Suite) -> int:
    engine = create_engine(suite.settings.database_url("loans"))
    with engine.connect() as conn:
        total = int(conn.execute(text("SELECT count(*) FROM loans")).scalar_one())
    engine.dispose()
    return total


@pytest.fixture(scope="module")
def borrower(suite: Suite) -> Account:
    return suite.register("BORROWER")


@pytest.fixture
def failing_outbox(suite: Suite) -> Iterator[None]:
    execute(suite, FAIL_OUTBOX[suite.backend])
    try:
        yield
    finally:
        execute(suite, HEAL_OUTBOX[suite.backend])


def audited_request_ids(suite: Suite, account: Account) -> list[str]:
    page = suite.audit.ListAuditEvents(
        audit_pb.ListAuditEventsRequest(page_size=500), metadata=account.metadata
    ).page
    return [event.request_id for event in page.events]


def wait_for_audit(suite: Suite, account: Account, request_id: str) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = audited_request_ids(suite, account)
        if request_id in seen:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{request_id} never reached the audit log")


def test_a_failure_after_the_loan_insert_leaves_neither_loan_nor_event(
    suite: Suite, borrower: Account, failing_outbox: None
) -> None:
    before = count_loans(suite)
    request_id = f"doomed-{uuid.uuid4().hex}"

    response = suite.loans.CreateLoan(
        LOAN, metadata=(*borrower.metadata, ("x-request-id", request_id))
    )

    assert response.error.code == error_pb2.ERROR_CODE_INTERNAL
    assert response.error.request_id == request_id
    assert "injected" not in response.error.message
    assert "outbox" not in response.error.message
    assert count_loans(suite) == before


def test_nothing_rejected_or_rolled_back_reaches_the_audit_log(
    suite: Suite, borrower: Account
) -> None:
    rejected = f"rejected-{uuid.uuid4().hex}"
    accepted = f"accepted-{uuid.uuid4().hex}"
    invalid = pb.CreateLoanRequest(name="", currency_code="EUR")
    assert suite.loans.CreateLoan(
        invalid, metadata=(*borrower.metadata, ("x-request-id", rejected))
    ).HasField("error")

    created = suite.loans.CreateLoan(
        LOAN, metadata=(*borrower.metadata, ("x-request-id", accepted))
    )

    seen = wait_for_audit(suite, borrower, accepted)
    assert created.HasField("loan")
    assert rejected not in seen
    assert not [r for r in seen if r.startswith("doomed-")]
    assert seen.count(accepted) == 1
