"""Step 5 and 6: the loan and its audit event commit together or not at all."""

from __future__ import annotations

import uuid

from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import count, refusing_inserts
from tests.loans.envelope import tagged
from tests.loans.factories import audit_log, loan_request
from tests.support import Account, Suite, eventually


def audited_request_ids(suite: Suite, account: Account) -> list[str]:
    return [event.request_id for event in audit_log(suite.audit, account)]


def test_a_failure_after_the_loan_insert_leaves_neither_loan_nor_event(
    suite: Suite, borrower: Account
) -> None:
    before = count(suite, "loans")
    request_id = f"doomed-{uuid.uuid4().hex}"

    # Real fault injection: the database itself refuses the outbox insert, after the loan insert.
    with refusing_inserts(suite, "outbox_events"):
        response = suite.loans.CreateLoan(loan_request(), metadata=tagged(borrower, request_id))

    assert response.error.code == error_pb2.ERROR_CODE_INTERNAL
    assert response.error.request_id == request_id
    assert "injected" not in response.error.message
    assert "outbox" not in response.error.message
    assert count(suite, "loans") == before


def test_nothing_rejected_or_rolled_back_reaches_the_audit_log(
    suite: Suite, borrower: Account
) -> None:
    rejected = f"rejected-{uuid.uuid4().hex}"
    accepted = f"accepted-{uuid.uuid4().hex}"
    invalid = pb.CreateLoanRequest(name="", currency_code="EUR")
    assert suite.loans.CreateLoan(invalid, metadata=tagged(borrower, rejected)).HasField("error")

    created = suite.loans.CreateLoan(loan_request(), metadata=tagged(borrower, accepted))

    eventually(lambda: accepted in audited_request_ids(suite, borrower), "the audit log has it")
    seen = audited_request_ids(suite, borrower)
    assert created.HasField("loan")
    assert rejected not in seen
    assert not [r for r in seen if r.startswith("doomed-")]
    assert seen.count(accepted) == 1
