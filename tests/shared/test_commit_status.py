"""A commit that cannot be made durable answers UNAVAILABLE, as a real gRPC status.

Retry policies, proxies and balancers see the status; the client still gets the
suite's Error (as a google.rpc.Status detail) with the request id. The fault is
real: a deferred foreign key that only the COMMIT checks.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_status import rpc_status
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import create_engine, text

from tests.support import Account, Suite

LOAN = pb.CreateLoanRequest(
    name="Commit Check",
    loan_type=pb.LOAN_TYPE_FIXED_RATE,
    currency_code="EUR",
    principal_amount="1000.00",
    start_date="2027-01-01",
    maturity_date="2030-01-01",
)
GUARD = "CREATE TABLE commit_guard (loan_id VARCHAR(36) REFERENCES loans (id) {deferred})"
DEFERRED = "DEFERRABLE INITIALLY DEFERRED"
ARM = {
    "sqlite": [
        """CREATE TRIGGER fail_at_commit AFTER INSERT ON loans
           BEGIN INSERT INTO commit_guard VALUES ('no-such-loan'); END"""
    ],
    "postgresql": [
        """CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO commit_guard VALUES ('no-such-loan'); RETURN NEW; END $$""",
        """CREATE TRIGGER fail_at_commit AFTER INSERT ON loans
           FOR EACH ROW EXECUTE FUNCTION fail_at_commit()""",
    ],
}
DISARM = {
    "sqlite": ["DROP TRIGGER fail_at_commit", "DROP TABLE commit_guard"],
    "postgresql": [
        "DROP TRIGGER fail_at_commit ON loans",
        "DROP FUNCTION fail_at_commit()",
        "DROP TABLE commit_guard",
    ],
}


def execute(suite: Suite, statements: list[str]) -> list[int]:
    engine = create_engine(suite.settings.database_url("loans"))
    try:
        with engine.begin() as conn:
            counts = []
            for statement in statements:
                result = conn.execute(text(statement))
                counts.append(int(result.scalar_one()) if result.returns_rows else 0)
            return counts
    finally:
        engine.dispose()


@contextlib.contextmanager
def failing_commits(suite: Suite) -> Iterator[None]:
    """Every loans commit that inserted a loan fails while this is open."""
    execute(suite, [GUARD.format(deferred=DEFERRED), *ARM[suite.backend]])
    try:
        yield
    finally:
        execute(suite, DISARM[suite.backend])


@pytest.fixture(scope="module")
def borrower(suite: Suite) -> Account:
    return suite.register("BORROWER")


def test_a_commit_that_fails_answers_unavailable_with_the_error(
    suite: Suite, borrower: Account
) -> None:
    request_id = f"commit-{uuid.uuid4().hex}"
    before = execute(suite, ["SELECT count(*) FROM loans", "SELECT count(*) FROM outbox_events"])
    metadata = (*borrower.metadata, ("x-request-id", request_id))

    with failing_commits(suite), pytest.raises(grpc.RpcError) as raised:
        suite.loans.CreateLoan(LOAN, metadata=metadata)

    call = raised.value
    assert call.code() is grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(call)  # type: ignore[arg-type]
    assert status is not None
    [detail] = status.details
    error = error_pb2.Error()
    assert detail.Unpack(error)
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAVAILABLE, "COMMIT_FAILED")
    assert error.request_id == request_id
    trailing = {m.key: str(m.value) for m in call.trailing_metadata()}  # text, not bytes
    assert trailing["x-request-id"] == request_id
    after = execute(suite, ["SELECT count(*) FROM loans", "SELECT count(*) FROM outbox_events"])
    assert after == before  # nothing of it was written


def test_the_next_write_after_a_failed_commit_succeeds(suite: Suite, borrower: Account) -> None:
    with failing_commits(suite), pytest.raises(grpc.RpcError):
        suite.loans.CreateLoan(LOAN, metadata=borrower.metadata)

    response = suite.loans.CreateLoan(LOAN, metadata=borrower.metadata)

    assert response.HasField("loan"), response.error
