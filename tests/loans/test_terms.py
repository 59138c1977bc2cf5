"""UpdateLoan and DeleteLoan through real RPCs: masks, rules, etags, replays, who and when."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import count, events_of_request, sql
from tests.loans.envelope import (
    ABORTED,
    DENIED,
    INVALID,
    NOT_FOUND,
    PRECONDITION,
    Envelope,
    failure,
    new_id,
    tagged,
)
from tests.loans.factories import get_loan, new_loan, update_loan
from tests.loans.journey import Journey
from tests.support import Account, Suite


def test_update_changes_only_the_fields_named_in_the_mask(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    request_id = new_id()

    response = suite.loans.UpdateLoan(
        pb.UpdateLoanRequest(
            loan_id=loan.id,
            etag=loan.etag,
            update_mask=FieldMask(paths=["name", "principal_amount"]),
            name="  Renamed Loan  ",
            principal_amount="1500000.00",
            # Not in the mask: ignored, even though they would be invalid.
            currency_code="XXX",
            maturity_date="not a date",
            drawn_amount="9999999999.00",
        ),
        metadata=tagged(borrower, request_id),
    )

    updated = response.loan
    assert (updated.name, updated.principal_amount) == ("Renamed Loan", "1500000.00")
    assert (updated.currency_code, updated.maturity_date, updated.drawn_amount) == (
        loan.currency_code,
        loan.maturity_date,
        loan.drawn_amount,
    )
    assert updated.etag != loan.etag
    assert get_loan(suite.loans, borrower, loan.id).loan == updated
    [event] = events_of_request(suite, request_id)
    assert event["action"] == "LOAN_UPDATED"
    assert event["resource_id"] == loan.id
    assert event["changes"] == [
        ["name", json.dumps(loan.name), json.dumps("Renamed Loan")],
        ["principal_amount", json.dumps(loan.principal_amount), json.dumps("1500000.00")],
    ]


def test_an_update_to_the_same_values_writes_nothing(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    request_id = new_id()

    response = suite.loans.UpdateLoan(
        pb.UpdateLoanRequest(
            loan_id=loan.id, update_mask=FieldMask(paths=["name"]), name=loan.name
        ),
        metadata=tagged(borrower, request_id),
    )

    assert response.loan == loan
    assert events_of_request(suite, request_id) == []


@pytest.mark.parametrize(
    ("paths", "reason"),
    [
        ([], "UPDATE_MASK_REQUIRED"),
        (["state"], "UPDATE_MASK_INVALID"),
        (["name", "borrower_organization_id"], "UPDATE_MASK_INVALID"),
        (["etag"], "UPDATE_MASK_INVALID"),
    ],
)
def test_the_mask_must_name_updatable_fields(
    suite: Suite, borrower: Account, paths: list[str], reason: str
) -> None:
    loan = new_loan(suite.loans, borrower)

    response = update_loan(suite.loans, borrower, loan.id, paths=paths, name="Another")

    assert failure(response) == (INVALID, reason, ["update_mask"])
    assert get_loan(suite.loans, borrower, loan.id).loan == loan


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"maturity_date": "2026-06-30"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
        # The unchanged maturity is what the new start breaks: the violation names it.
        ({"start_date": "2032-01-01"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
        ({"committed_amount": "1250000.01"}, "committed_amount", "COMMITTED_EXCEEDS_PRINCIPAL"),
        ({"principal_amount": "500000.00"}, "committed_amount", "COMMITTED_EXCEEDS_PRINCIPAL"),
        # The stored amounts carry cents, which yen do not have.
        ({"currency_code": "JPY"}, "principal_amount", "AMOUNT_TOO_PRECISE"),
        ({"name": " "}, "name", "NAME_REQUIRED"),
        ({"loan_type": 42}, "loan_type", "LOAN_TYPE_INVALID"),
    ],
)
def test_an_update_that_breaks_a_rule_names_the_field_and_changes_nothing(
    suite: Suite,
    borrower: Account,
    fields: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    loan = new_loan(suite.loans, borrower)
    request_id = new_id()

    response = suite.loans.UpdateLoan(
        pb.UpdateLoanRequest(loan_id=loan.id, update_mask=FieldMask(paths=list(fields)), **fields),
        metadata=tagged(borrower, request_id),
    )

    assert response.error.code == INVALID
    assert response.error.reason == reason
    assert field in [v.field for v in response.error.field_violations]
    assert get_loan(suite.loans, borrower, loan.id).loan == loan
    assert events_of_request(suite, request_id) == []


def test_a_stale_etag_is_aborted_and_the_current_one_works(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    first = update_loan(suite.loans, borrower, loan.id, etag=loan.etag, name="First")

    stale = update_loan(suite.loans, borrower, loan.id, etag=loan.etag, name="Second")
    fresh = update_loan(suite.loans, borrower, loan.id, etag=first.loan.etag, name="Third")

    assert failure(stale) == (ABORTED, "ETAG_MISMATCH", [])
    assert fresh.loan.name == "Third"
    stale_delete = suite.loans.DeleteLoan(
        pb.DeleteLoanRequest(loan_id=loan.id, etag=loan.etag), metadata=borrower.metadata
    )
    assert failure(stale_delete) == (ABORTED, "ETAG_MISMATCH", [])


def test_a_replayed_update_returns_the_original_and_writes_once(
    suite: Suite, borrower: Account
) -> None:
    loan = new_loan(suite.loans, borrower)
    request_id = new_id()
    metadata = tagged(borrower, request_id)
    request = pb.UpdateLoanRequest(
        loan_id=loan.id,
        etag=loan.etag,
        update_mask=FieldMask(paths=["name"]),
        name="Once",
        request_id=request_id,
    )

    first = suite.loans.UpdateLoan(request, metadata=metadata)
    second = suite.loans.UpdateLoan(request, metadata=metadata)

    assert first.HasField("loan")
    assert second == first
    assert get_loan(suite.loans, borrower, loan.id).loan.etag == first.loan.etag
    assert [e["action"] for e in events_of_request(suite, request_id)] == ["LOAN_UPDATED"]


def test_only_the_borrower_changes_terms_and_outsiders_see_nothing(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower, lender)
    outsider = suite.register("BORROWER")
    calls: list[Callable[[Account], Envelope]] = [
        lambda who: update_loan(suite.loans, who, loan.id, name="Mine now"),
        lambda who: suite.loans.DeleteLoan(
            pb.DeleteLoanRequest(loan_id=loan.id), metadata=who.metadata
        ),
        lambda who: suite.loans.InviteLender(
            pb.InviteLenderRequest(loan_id=loan.id, lender_email=lender.email),
            metadata=who.metadata,
        ),
    ]

    for call in calls:
        assert failure(call(lender)) == (
            DENIED,
            "NOT_THE_BORROWER",
            [],
        )
        assert failure(call(outsider)) == (NOT_FOUND, "LOAN_NOT_FOUND", [])


def test_terms_of_a_submitted_loan_are_frozen(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    loan = journey.to("PENDING_APPROVAL").loan

    responses: list[Envelope] = [
        update_loan(suite.loans, borrower, loan.id, name="Too late"),
        suite.loans.DeleteLoan(pb.DeleteLoanRequest(loan_id=loan.id), metadata=borrower.metadata),
        suite.loans.InviteLender(
            pb.InviteLenderRequest(loan_id=loan.id, lender_email=lender.email),
            metadata=borrower.metadata,
        ),
    ]

    for response in responses:
        assert failure(response) == (PRECONDITION, "LOAN_NOT_DRAFT", [])
    assert get_loan(suite.loans, borrower, loan.id).loan == loan


def test_delete_removes_the_loan_with_everything_that_belongs_to_it(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    loan = journey.draft().loan  # with its lender, a KPI and the KPI's ratchet
    # A DRAFT loan has no history through the RPCs; the row stands for any it might have.
    sql(
        suite,
        "INSERT INTO loan_state_changes (loan_id, from_state, to_state, actor_user_id,"
        " actor_organization_id, reason, change_time)"
        " VALUES (:loan, 'DRAFT', 'DRAFT', :user, :org, '', CURRENT_TIMESTAMP)",
        loan=loan.id,
        user=borrower.user_id,
        org=borrower.organization_id,
    )
    request_id = new_id()

    response = suite.loans.DeleteLoan(
        pb.DeleteLoanRequest(loan_id=loan.id, etag=loan.etag), metadata=tagged(borrower, request_id)
    )

    assert response.deletion.loan_id == loan.id
    assert response.deletion.delete_time.seconds > 0
    assert count(suite, "loans", id=loan.id) == 0
    for table in ("kpis", "margin_ratchets", "loan_state_changes"):
        assert count(suite, table, loan_id=loan.id) == 0, table
    gone = get_loan(suite.loans, borrower, loan.id)
    assert failure(gone) == (NOT_FOUND, "LOAN_NOT_FOUND", [])
    [event] = events_of_request(suite, request_id)
    assert event["action"] == "LOAN_DELETED"
    assert sorted(event["organization_ids"]) == sorted(
        [borrower.organization_id, lender.organization_id]
    )


def test_a_replayed_delete_returns_the_original_deletion(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    request = pb.DeleteLoanRequest(loan_id=loan.id, request_id=new_id())

    first = suite.loans.DeleteLoan(request, metadata=tagged(borrower, request.request_id))
    second = suite.loans.DeleteLoan(request, metadata=borrower.metadata)
    again_without_key = suite.loans.DeleteLoan(
        pb.DeleteLoanRequest(loan_id=loan.id), metadata=borrower.metadata
    )

    assert first.HasField("deletion")
    assert second == first
    assert failure(again_without_key) == (NOT_FOUND, "LOAN_NOT_FOUND", [])
    assert [e["action"] for e in events_of_request(suite, request.request_id)] == ["LOAN_DELETED"]
