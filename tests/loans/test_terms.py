"""UpdateLoan, DeleteLoan, InviteLender and ListLoans' counterparty filter, through real RPCs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import create_engine, text

from tests.auth.support import without_request_id
from tests.loans.lending import (
    assert_error,
    audit_events,
    get_loan,
    insert_kpi,
    insert_ratchet,
    invite,
    new_id,
    new_loan,
    sql,
    tagged,
)
from tests.support import Account, Suite

INVALID = error_pb2.ERROR_CODE_INVALID_ARGUMENT
PRECONDITION = error_pb2.ERROR_CODE_FAILED_PRECONDITION


@pytest.fixture(scope="module")
def borrower(suite: Suite) -> Account:
    return suite.register("BORROWER")


@pytest.fixture(scope="module")
def lender(suite: Suite) -> Account:
    return suite.register("LENDER")


def update(
    suite: Suite,
    account: Account,
    loan: pb.Loan,
    paths: list[str],
    request_id: str = "",
    **fields: Any,
) -> pb.UpdateLoanResponse:
    request = pb.UpdateLoanRequest(
        loan_id=loan.id, update_mask=FieldMask(paths=paths), request_id=request_id, **fields
    )
    return suite.loans.UpdateLoan(request, metadata=account.metadata)


def submitted_loan(suite: Suite, borrower: Account, lender: Account) -> pb.Loan:
    loan = new_loan(suite, borrower)
    invite(suite, borrower, loan.id, lender)
    insert_kpi(suite, loan.id)
    response = suite.loans.SubmitLoan(
        pb.SubmitLoanRequest(loan_id=loan.id), metadata=borrower.metadata
    )
    assert response.loan.state == pb.LOAN_STATE_PENDING_APPROVAL, response.error
    return response.loan


def test_update_changes_only_the_fields_named_in_the_mask(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite, borrower)
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
    assert get_loan(suite, borrower, loan.id).loan == updated
    [event] = audit_events(suite, request_id)
    assert event["action"] == "LOAN_UPDATED"
    assert event["resource_id"] == loan.id
    assert event["changes"] == [
        ["name", json.dumps(loan.name), json.dumps("Renamed Loan")],
        ["principal_amount", json.dumps("1000000.00"), json.dumps("1500000.00")],
    ]


def test_an_update_to_the_same_values_writes_nothing(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite, borrower)
    request_id = new_id()

    response = suite.loans.UpdateLoan(
        pb.UpdateLoanRequest(
            loan_id=loan.id, update_mask=FieldMask(paths=["name"]), name=loan.name
        ),
        metadata=tagged(borrower, request_id),
    )

    assert response.loan == loan
    assert audit_events(suite, request_id) == []


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
    loan = new_loan(suite, borrower)

    response = update(suite, borrower, loan, paths, name="Another")

    assert_error(response, INVALID, reason, "update_mask")
    assert get_loan(suite, borrower, loan.id).loan == loan


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"maturity_date": "2026-06-30"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
        # The unchanged maturity is what the new start breaks: the violation names it.
        ({"start_date": "2032-01-01"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
        ({"committed_amount": "1000000.01"}, "committed_amount", "COMMITTED_EXCEEDS_PRINCIPAL"),
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
    loan = new_loan(suite, borrower)
    request_id = new_id()

    response = suite.loans.UpdateLoan(
        pb.UpdateLoanRequest(loan_id=loan.id, update_mask=FieldMask(paths=list(fields)), **fields),
        metadata=tagged(borrower, request_id),
    )

    assert response.error.code == INVALID
    assert response.error.reason == reason
    assert field in [v.field for v in response.error.field_violations]
    assert get_loan(suite, borrower, loan.id).loan == loan
    assert audit_events(suite, request_id) == []


def test_a_stale_etag_is_aborted_and_the_current_one_works(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite, borrower)
    first = update(suite, borrower, loan, ["name"], etag=loan.etag, name="First")

    stale = update(suite, borrower, loan, ["name"], etag=loan.etag, name="Second")
    fresh = update(suite, borrower, loan, ["name"], etag=first.loan.etag, name="Third")

    assert_error(stale, error_pb2.ERROR_CODE_ABORTED, "ETAG_MISMATCH")
    assert fresh.loan.name == "Third"
    stale_delete = suite.loans.DeleteLoan(
        pb.DeleteLoanRequest(loan_id=loan.id, etag=loan.etag), metadata=borrower.metadata
    )
    assert_error(stale_delete, error_pb2.ERROR_CODE_ABORTED, "ETAG_MISMATCH")


def test_a_replayed_update_returns_the_original_and_writes_once(
    suite: Suite, borrower: Account
) -> None:
    loan = new_loan(suite, borrower)
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
    assert get_loan(suite, borrower, loan.id).loan.etag == first.loan.etag
    assert [e["action"] for e in audit_events(suite, request_id)] == ["LOAN_UPDATED"]


def test_only_the_borrower_changes_terms_and_outsiders_see_nothing(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite, borrower)
    invite(suite, borrower, loan.id, lender)
    outsider = suite.register("BORROWER")
    calls = [
        lambda who: update(suite, who, loan, ["name"], name="Mine now"),
        lambda who: suite.loans.DeleteLoan(
            pb.DeleteLoanRequest(loan_id=loan.id), metadata=who.metadata
        ),
        lambda who: suite.loans.InviteLender(
            pb.InviteLenderRequest(loan_id=loan.id, lender_email=lender.email),
            metadata=who.metadata,
        ),
    ]

    for call in calls:
        assert_error(call(lender), error_pb2.ERROR_CODE_PERMISSION_DENIED, "NOT_THE_BORROWER")
        assert_error(call(outsider), error_pb2.ERROR_CODE_NOT_FOUND, "LOAN_NOT_FOUND")


def test_terms_of_a_submitted_loan_are_frozen(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = submitted_loan(suite, borrower, lender)

    responses = [
        update(suite, borrower, loan, ["name"], name="Too late"),
        suite.loans.DeleteLoan(pb.DeleteLoanRequest(loan_id=loan.id), metadata=borrower.metadata),
        suite.loans.InviteLender(
            pb.InviteLenderRequest(loan_id=loan.id, lender_email=lender.email),
            metadata=borrower.metadata,
        ),
    ]

    for response in responses:
        assert_error(response, PRECONDITION, "LOAN_NOT_DRAFT")
    assert get_loan(suite, borrower, loan.id).loan == loan


def test_delete_removes_the_loan_with_everything_that_belongs_to_it(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = invite(suite, borrower, new_loan(suite, borrower).id, lender)
    kpi_id = insert_kpi(suite, loan.id, status="PROPOSED")
    insert_ratchet(suite, loan.id, kpi_id)
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
    for table in ("loans", "kpis", "margin_ratchets", "loan_state_changes"):
        column = "id" if table == "loans" else "loan_id"
        query = f"SELECT count(*) FROM {table} WHERE {column} = :id"  # noqa: S608
        assert sql(suite, query, id=loan.id) == [(0,)], table
    assert_error(
        get_loan(suite, borrower, loan.id), error_pb2.ERROR_CODE_NOT_FOUND, "LOAN_NOT_FOUND"
    )
    [event] = audit_events(suite, request_id)
    assert event["action"] == "LOAN_DELETED"
    assert sorted(event["organization_ids"]) == sorted(
        [borrower.organization_id, lender.organization_id]
    )


def test_a_replayed_delete_returns_the_original_deletion(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite, borrower)
    request = pb.DeleteLoanRequest(loan_id=loan.id, request_id=new_id())

    first = suite.loans.DeleteLoan(request, metadata=tagged(borrower, request.request_id))
    second = suite.loans.DeleteLoan(request, metadata=borrower.metadata)
    again_without_key = suite.loans.DeleteLoan(
        pb.DeleteLoanRequest(loan_id=loan.id), metadata=borrower.metadata
    )

    assert first.HasField("deletion")
    assert second == first
    assert_error(again_without_key, error_pb2.ERROR_CODE_NOT_FOUND, "LOAN_NOT_FOUND")
    assert [e["action"] for e in audit_events(suite, request.request_id)] == ["LOAN_DELETED"]


def test_inviting_a_lender_gives_their_organization_the_loan(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite, borrower)
    request_id = new_id()

    response = suite.loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email=f"  {lender.email.upper()} "),
        metadata=tagged(borrower, request_id),
    )

    assert response.loan.lender_organization_id == lender.organization_id
    assert response.loan.etag != loan.etag
    assert get_loan(suite, lender, loan.id).loan == response.loan
    [event] = audit_events(suite, request_id)
    assert event["action"] == "LENDER_INVITED"
    assert event["changes"] == [["lender_organization_id", "", json.dumps(lender.organization_id)]]


def test_an_unknown_email_and_a_non_lender_email_get_the_same_answer(
    suite: Suite, borrower: Account
) -> None:
    loan = new_loan(suite, borrower)
    other_borrower = suite.register("BORROWER")

    def invite_email(email: str) -> pb.InviteLenderResponse:
        request = pb.InviteLenderRequest(loan_id=loan.id, lender_email=email)
        return suite.loans.InviteLender(request, metadata=borrower.metadata)

    unknown = invite_email("nobody-at-all@example.com")
    not_a_lender = invite_email(other_borrower.email)
    themself = invite_email(borrower.email)

    assert_error(unknown, PRECONDITION, "LENDER_NOT_FOUND", "lender_email")
    assert unknown.error.message == "no lender has this email"
    assert without_request_id(not_a_lender.error) == without_request_id(unknown.error)
    assert without_request_id(themself.error) == without_request_id(unknown.error)
    assert get_loan(suite, borrower, loan.id).loan == loan


def test_a_deactivated_lender_cannot_be_invited(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite, borrower)
    gone = suite.register("LENDER")
    engine = create_engine(suite.settings.database_url("auth"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET active = false WHERE id = :id"), {"id": gone.user_id})
    engine.dispose()

    response = suite.loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email=gone.email), metadata=borrower.metadata
    )

    assert_error(response, PRECONDITION, "LENDER_NOT_FOUND", "lender_email")


def test_an_invitation_needs_an_email(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite, borrower)

    response = suite.loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email="  "), metadata=borrower.metadata
    )

    assert_error(response, INVALID, "LENDER_EMAIL_REQUIRED", "lender_email")


def list_ids(
    suite: Suite, account: Account, counterparty: str = "", page_size: int = 0, token: str = ""
) -> pb.ListLoansResponse:
    return suite.loans.ListLoans(
        pb.ListLoansRequest(
            page_size=page_size,
            page_token=token,
            filter=pb.LoanFilter(counterparty_organization_id=counterparty),
        ),
        metadata=account.metadata,
    )


def test_list_loans_filters_by_the_counterparty(suite: Suite) -> None:
    borrower, other_borrower = suite.register("BORROWER"), suite.register("BORROWER")
    lender_a, lender_b = suite.register("LENDER"), suite.register("LENDER")
    with_a = [invite(suite, borrower, new_loan(suite, borrower).id, lender_a) for _ in range(2)]
    with_b = invite(suite, borrower, new_loan(suite, borrower).id, lender_b)
    new_loan(suite, borrower)  # no lender yet
    theirs = invite(suite, other_borrower, new_loan(suite, other_borrower).id, lender_a)

    def ids(response: pb.ListLoansResponse) -> set[str]:
        return {loan.id for loan in response.page.loans}

    assert ids(list_ids(suite, borrower, lender_a.organization_id)) == {loan.id for loan in with_a}
    assert ids(list_ids(suite, borrower, lender_b.organization_id)) == {with_b.id}
    assert ids(list_ids(suite, lender_a, borrower.organization_id)) == {loan.id for loan in with_a}
    assert ids(list_ids(suite, lender_a, other_borrower.organization_id)) == {theirs.id}
    assert ids(list_ids(suite, lender_b, other_borrower.organization_id)) == set()
    assert len(list_ids(suite, lender_a).page.loans) == 3


def test_a_page_token_is_only_good_for_its_counterparty(suite: Suite) -> None:
    borrower, lender = suite.register("BORROWER"), suite.register("LENDER")
    for _ in range(2):
        invite(suite, borrower, new_loan(suite, borrower).id, lender)

    first = list_ids(suite, borrower, lender.organization_id, page_size=1)
    token = first.page.next_page_token
    same = list_ids(suite, borrower, lender.organization_id, page_size=1, token=token)
    unfiltered = list_ids(suite, borrower, page_size=1, token=token)
    other = list_ids(suite, borrower, borrower.organization_id, page_size=1, token=token)

    assert token
    assert len(same.page.loans) == 1
    assert same.page.loans[0].id != first.page.loans[0].id
    assert_error(unfiltered, INVALID, "PAGE_TOKEN_INVALID")
    assert_error(other, INVALID, "PAGE_TOKEN_INVALID")
