"""CreateLoan through the real RPC: validation, idempotency, the transaction, the envelope."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import count
from tests.loans.factories import create_loan, get_loan, loan_request
from tests.support import Account, Suite


def test_a_valid_loan_is_created_as_a_draft_of_the_borrowers_organization(
    suite: Suite, borrower: Account
) -> None:
    response = create_loan(suite.loans, borrower)

    assert response.WhichOneof("result") == "loan"
    loan = response.loan
    assert uuid.UUID(loan.id)
    assert loan.state == pb.LOAN_STATE_DRAFT
    assert loan.borrower_organization_id == borrower.organization_id
    assert loan.lender_organization_id == ""
    assert loan.creator_user_id == borrower.user_id
    assert (loan.principal_amount, loan.committed_amount, loan.drawn_amount) == (
        "1250000.00",
        "1000000.00",
        "250000.50",
    )
    assert (loan.start_date, loan.maturity_date) == ("2027-01-01", "2032-01-01")
    assert loan.etag
    assert loan.create_time.seconds > 0
    assert loan.update_time == loan.create_time


def test_amounts_come_back_exact_with_the_currency_digits(suite: Suite, borrower: Account) -> None:
    yen = create_loan(
        suite.loans,
        borrower,
        currency_code="JPY",
        principal_amount="999999999999999",
        committed_amount="1",
        drawn_amount="",
    )
    fetched = get_loan(suite.loans, borrower, yen.loan.id)

    assert (
        fetched.loan.principal_amount,
        fetched.loan.committed_amount,
        fetched.loan.drawn_amount,
    ) == ("999999999999999", "1", "0")


INVALID = [
    ({"name": "  "}, "name", "NAME_REQUIRED"),
    ({"name": "x" * 201}, "name", "NAME_TOO_LONG"),
    ({"loan_type": pb.LOAN_TYPE_UNSPECIFIED}, "loan_type", "LOAN_TYPE_REQUIRED"),
    ({"loan_type": 99}, "loan_type", "LOAN_TYPE_INVALID"),
    ({"currency_code": ""}, "currency_code", "CURRENCY_REQUIRED"),
    ({"currency_code": "XYZ"}, "currency_code", "CURRENCY_UNSUPPORTED"),
    ({"currency_code": "eur"}, "currency_code", "CURRENCY_UNSUPPORTED"),
    ({"principal_amount": ""}, "principal_amount", "AMOUNT_REQUIRED"),
    ({"principal_amount": "-5.00"}, "principal_amount", "AMOUNT_NEGATIVE"),
    ({"principal_amount": "1e6"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
    ({"principal_amount": "1,000.00"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
    ({"principal_amount": "NaN"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
    ({"principal_amount": "0"}, "principal_amount", "AMOUNT_NOT_POSITIVE"),
    ({"principal_amount": "1000000000000000"}, "principal_amount", "AMOUNT_TOO_LARGE"),
    ({"principal_amount": "1250000.001"}, "principal_amount", "AMOUNT_TOO_PRECISE"),
    (
        {
            "currency_code": "JPY",
            "principal_amount": "100.5",
            "committed_amount": "1",
            "drawn_amount": "0",
        },
        "principal_amount",
        "AMOUNT_TOO_PRECISE",
    ),
    ({"committed_amount": "-1"}, "committed_amount", "AMOUNT_NEGATIVE"),
    ({"committed_amount": "2000000.00"}, "committed_amount", "COMMITTED_EXCEEDS_PRINCIPAL"),
    ({"drawn_amount": "abc"}, "drawn_amount", "AMOUNT_NOT_DECIMAL"),
    ({"drawn_amount": "1000000.01"}, "drawn_amount", "DRAWN_EXCEEDS_COMMITTED"),
    ({"start_date": ""}, "start_date", "DATE_REQUIRED"),
    ({"start_date": "01/02/2027"}, "start_date", "DATE_INVALID_FORMAT"),
    ({"start_date": "2027-02-30"}, "start_date", "DATE_DOES_NOT_EXIST"),
    ({"maturity_date": "2027-13-01"}, "maturity_date", "DATE_DOES_NOT_EXIST"),
    ({"maturity_date": "2027-01-01"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
    ({"maturity_date": "2026-12-31"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
    ({"request_id": "has spaces"}, "request_id", "REQUEST_ID_INVALID"),
]


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    INVALID,
    ids=[reason + ":" + field for _, field, reason in INVALID],
)
def test_invalid_input_is_an_envelope_error_naming_the_field_and_writes_nothing(
    suite: Suite, borrower: Account, overrides: dict[str, Any], field: str, reason: str
) -> None:
    loans_before, events_before = count(suite, "loans"), count(suite, "outbox_events")

    response = create_loan(suite.loans, borrower, **overrides)

    assert response.WhichOneof("result") == "error"
    assert response.error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert response.error.reason == reason
    assert [v.field for v in response.error.field_violations] == [field]
    assert response.error.request_id
    assert (count(suite, "loans"), count(suite, "outbox_events")) == (loans_before, events_before)


def test_every_invalid_field_is_reported_at_once(suite: Suite, borrower: Account) -> None:
    response = create_loan(
        suite.loans, borrower, name="", currency_code="XXX", maturity_date="2020-01-01"
    )

    assert {v.field for v in response.error.field_violations} == {
        "name",
        "currency_code",
        "maturity_date",
    }


def test_a_retry_with_the_same_request_id_returns_the_original_loan_and_writes_once(
    suite: Suite, borrower: Account
) -> None:
    request_id = uuid.uuid4().hex
    loans_before, events_before = count(suite, "loans"), count(suite, "outbox_events")

    first = create_loan(suite.loans, borrower, request_id=request_id)
    second = create_loan(suite.loans, borrower, request_id=request_id)

    assert first.HasField("loan")
    assert second == first
    assert count(suite, "loans") == loans_before + 1
    assert count(suite, "outbox_events") == events_before + 1


def test_a_request_id_reused_for_another_request_is_refused(
    suite: Suite, borrower: Account
) -> None:
    request_id = uuid.uuid4().hex
    assert create_loan(suite.loans, borrower, request_id=request_id).HasField("loan")

    response = create_loan(suite.loans, borrower, request_id=request_id, name="Another loan")

    assert response.error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert response.error.reason == "REQUEST_ID_REUSED"
    assert [v.field for v in response.error.field_violations] == ["request_id"]


def test_the_same_request_id_of_two_users_makes_two_loans(suite: Suite, borrower: Account) -> None:
    other = suite.register("BORROWER")
    request_id = uuid.uuid4().hex

    mine = create_loan(suite.loans, borrower, request_id=request_id)
    theirs = create_loan(suite.loans, other, request_id=request_id)

    assert mine.loan.id != theirs.loan.id
    assert theirs.loan.borrower_organization_id == other.organization_id


def test_the_request_id_is_echoed_in_the_error_and_trailing_metadata(
    suite: Suite, borrower: Account
) -> None:
    response, call = suite.loans.CreateLoan.with_call(
        loan_request(name=""),
        metadata=(*borrower.metadata, ("x-request-id", "req-12345")),
    )

    assert response.error.request_id == "req-12345"
    assert ("x-request-id", "req-12345") in call.trailing_metadata()


def test_a_request_id_is_made_up_when_absent(suite: Suite, borrower: Account) -> None:
    response, call = suite.loans.CreateLoan.with_call(
        loan_request(name=""), metadata=borrower.metadata
    )

    trailing = dict(call.trailing_metadata())
    assert len(response.error.request_id) == 32
    assert trailing["x-request-id"] == response.error.request_id
