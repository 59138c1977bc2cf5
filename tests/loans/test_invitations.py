"""InviteLender, and ListLoans by the counterparty it makes, through real RPCs."""

from __future__ import annotations

import json

from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.auth.support import without_request_id
from tests.loans.database import deactivate, events_of_request
from tests.loans.envelope import INVALID, PRECONDITION, failure, new_id, tagged
from tests.loans.factories import get_loan, new_loan
from tests.support import Account, Suite


def test_inviting_a_lender_gives_their_organization_the_loan(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower)
    request_id = new_id()

    response = suite.loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email=f"  {lender.email.upper()} "),
        metadata=tagged(borrower, request_id),
    )

    assert response.loan.lender_organization_id == lender.organization_id
    assert response.loan.etag != loan.etag
    assert get_loan(suite.loans, lender, loan.id).loan == response.loan
    [event] = events_of_request(suite, request_id)
    assert event["action"] == "LENDER_INVITED"
    assert event["changes"] == [["lender_organization_id", "", json.dumps(lender.organization_id)]]


def test_an_unknown_email_and_a_non_lender_email_get_the_same_answer(
    suite: Suite, borrower: Account
) -> None:
    loan = new_loan(suite.loans, borrower)
    other_borrower = suite.register("BORROWER")

    def invite_email(email: str) -> pb.InviteLenderResponse:
        request = pb.InviteLenderRequest(loan_id=loan.id, lender_email=email)
        return suite.loans.InviteLender(request, metadata=borrower.metadata)

    unknown = invite_email("nobody-at-all@example.com")
    not_a_lender = invite_email(other_borrower.email)
    themself = invite_email(borrower.email)

    assert failure(unknown) == (PRECONDITION, "LENDER_NOT_FOUND", ["lender_email"])
    assert unknown.error.message == "no lender has this email"
    assert without_request_id(not_a_lender.error) == without_request_id(unknown.error)
    assert without_request_id(themself.error) == without_request_id(unknown.error)
    assert get_loan(suite.loans, borrower, loan.id).loan == loan


def test_a_deactivated_lender_cannot_be_invited(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    gone = suite.register("LENDER")
    deactivate(suite, gone)

    response = suite.loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email=gone.email), metadata=borrower.metadata
    )

    assert failure(response) == (PRECONDITION, "LENDER_NOT_FOUND", ["lender_email"])


def test_an_invitation_needs_an_email(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)

    response = suite.loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email="  "), metadata=borrower.metadata
    )

    assert failure(response) == (INVALID, "LENDER_EMAIL_REQUIRED", ["lender_email"])


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
    with_a = [new_loan(suite.loans, borrower, lender_a) for _ in range(2)]
    with_b = new_loan(suite.loans, borrower, lender_b)
    new_loan(suite.loans, borrower)  # no lender yet
    theirs = new_loan(suite.loans, other_borrower, lender_a)

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
        new_loan(suite.loans, borrower, lender)

    first = list_ids(suite, borrower, lender.organization_id, page_size=1)
    token = first.page.next_page_token
    same = list_ids(suite, borrower, lender.organization_id, page_size=1, token=token)
    unfiltered = list_ids(suite, borrower, page_size=1, token=token)
    other = list_ids(suite, borrower, borrower.organization_id, page_size=1, token=token)

    assert token
    assert len(same.page.loans) == 1
    assert same.page.loans[0].id != first.page.loans[0].id
    assert failure(unfiltered) == (INVALID, "PAGE_TOKEN_INVALID", [])
    assert failure(other) == (INVALID, "PAGE_TOKEN_INVALID", [])
