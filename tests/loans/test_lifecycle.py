"""The loan lifecycle through real RPCs: transitions, their rules, history and audit events."""

from __future__ import annotations

import json

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import events_of_request
from tests.loans.envelope import (
    ABORTED,
    DENIED,
    INVALID,
    NOT_FOUND,
    PRECONDITION,
    Failure,
    failure,
    new_id,
)
from tests.loans.factories import accept_kpi, get_loan, invite, new_kpi, new_loan
from tests.loans.journey import PATHS, REASON, TRANSITIONS, Journey
from tests.support import Account, Suite

# The only legal (rpc, from-state) pairs, and the reason each rpc gives otherwise.
LEGAL = {
    ("SubmitLoan", "DRAFT"),
    ("ApproveLoan", "PENDING_APPROVAL"),
    ("RejectLoan", "PENDING_APPROVAL"),
    ("WithdrawLoan", "DRAFT"),
    ("WithdrawLoan", "PENDING_APPROVAL"),
    ("ActivateLoan", "APPROVED"),
    ("CloseLoan", "ACTIVE"),
}
ILLEGAL_REASON = {
    "SubmitLoan": "LOAN_NOT_DRAFT",
    "ApproveLoan": "LOAN_NOT_PENDING_APPROVAL",
    "RejectLoan": "LOAN_NOT_PENDING_APPROVAL",
    "WithdrawLoan": "LOAN_NOT_DRAFT_OR_PENDING",
    "ActivateLoan": "LOAN_NOT_APPROVED",
    "CloseLoan": "LOAN_NOT_ACTIVE",
}
STATES = list(PATHS)  # every state a loan can be in


@pytest.fixture(scope="module")
def loans_by_state(journey: Journey) -> dict[str, pb.Loan]:
    """One loan in each state; illegal transitions leave them as they are."""
    return {state: journey.to(state).loan for state in STATES}


def history(suite: Suite, account: Account, loan_id: str) -> pb.ListLoanHistoryResponse:
    request = pb.ListLoanHistoryRequest(loan_id=loan_id)
    return suite.loans.ListLoanHistory(request, metadata=account.metadata)


def test_the_happy_path_from_draft_to_closed(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    loan = journey.draft(accepted=True).loan
    steps = [
        ("SubmitLoan", "PENDING_APPROVAL", "LOAN_SUBMITTED", borrower),
        ("ApproveLoan", "APPROVED", "LOAN_APPROVED", lender),
        ("ActivateLoan", "ACTIVE", "LOAN_ACTIVATED", lender),
        ("CloseLoan", "CLOSED", "LOAN_CLOSED", lender),
    ]
    before, etags = "DRAFT", {loan.etag}

    for rpc, state, action, actor in steps:
        request_id = new_id()
        response = journey.move(rpc, loan.id, etag=loan.etag, request_id=request_id)
        assert response.loan.state == pb.LoanState.Value(f"LOAN_STATE_{state}"), response.error
        [event] = events_of_request(suite, request_id)
        assert (event["action"], event["resource_id"]) == (action, loan.id)
        assert event["actor_user_id"] == actor.user_id
        wire = [json.dumps(f"LOAN_STATE_{s}") for s in (before, state)]
        assert event["changes"] == [["state", *wire]]
        assert sorted(event["organization_ids"]) == sorted(
            [borrower.organization_id, lender.organization_id]
        )
        loan, before = response.loan, state
        etags.add(loan.etag)

    assert len(etags) == len(steps) + 1
    changes = history(suite, lender, loan.id).history.changes
    assert [(c.from_state, c.to_state) for c in changes] == [
        (pb.LOAN_STATE_DRAFT, pb.LOAN_STATE_PENDING_APPROVAL),
        (pb.LOAN_STATE_PENDING_APPROVAL, pb.LOAN_STATE_APPROVED),
        (pb.LOAN_STATE_APPROVED, pb.LOAN_STATE_ACTIVE),
        (pb.LOAN_STATE_ACTIVE, pb.LOAN_STATE_CLOSED),
    ]
    assert [(c.actor_user_id, c.actor_organization_id) for c in changes] == [
        (actor.user_id, actor.organization_id) for *_, actor in steps
    ]
    times = [c.change_time.ToDatetime() for c in changes]
    assert times == sorted(times)
    assert changes[-1].change_time == loan.update_time
    assert history(suite, borrower, loan.id) == history(suite, lender, loan.id)


def test_a_rejection_records_its_reason(suite: Suite, borrower: Account, journey: Journey) -> None:
    loan = journey.to("PENDING_APPROVAL").loan
    request_id = new_id()

    response = journey.move("RejectLoan", loan.id, reason=f"  {REASON} ", request_id=request_id)

    assert response.loan.state == pb.LOAN_STATE_REJECTED
    last = history(suite, borrower, loan.id).history.changes[-1]
    assert (last.to_state, last.reason) == (pb.LOAN_STATE_REJECTED, REASON)
    [event] = events_of_request(suite, request_id)
    assert event["action"] == "LOAN_REJECTED"
    assert ["reason", "", json.dumps(REASON)] in event["changes"]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("", "REASON_REQUIRED"), ("   ", "REASON_REQUIRED"), ("x" * 1001, "REASON_TOO_LONG")],
)
def test_a_rejection_needs_a_reason_of_at_most_1000_characters(
    suite: Suite,
    lender: Account,
    journey: Journey,
    loans_by_state: dict[str, pb.Loan],
    reason: str,
    expected: str,
) -> None:
    loan = loans_by_state["PENDING_APPROVAL"]

    response = journey.move("RejectLoan", loan.id, reason=reason)

    assert failure(response) == (INVALID, expected, ["reason"])
    assert get_loan(suite.loans, lender, loan.id).loan == loan


@pytest.mark.parametrize("state", ["DRAFT", "PENDING_APPROVAL"])
def test_the_borrower_withdraws_a_draft_or_pending_loan(
    suite: Suite, borrower: Account, journey: Journey, state: str
) -> None:
    loan = journey.to(state).loan
    request_id = new_id()

    response = journey.move("WithdrawLoan", loan.id, request_id=request_id)

    assert response.loan.state == pb.LOAN_STATE_WITHDRAWN
    assert [e["action"] for e in events_of_request(suite, request_id)] == ["LOAN_WITHDRAWN"]
    changes = history(suite, borrower, loan.id).history.changes
    assert changes[-1].from_state == pb.LoanState.Value(f"LOAN_STATE_{state}")


@pytest.mark.parametrize(
    ("rpc", "state"),
    [(rpc, state) for rpc in TRANSITIONS for state in STATES if (rpc, state) not in LEGAL],
)
def test_an_illegal_transition_is_refused_and_names_the_rule(
    suite: Suite,
    borrower: Account,
    journey: Journey,
    loans_by_state: dict[str, pb.Loan],
    rpc: str,
    state: str,
) -> None:
    loan = loans_by_state[state]
    request_id = new_id()

    response = journey.move(rpc, loan.id, request_id=request_id)

    assert failure(response) == (PRECONDITION, ILLEGAL_REASON[rpc], [])
    assert get_loan(suite.loans, borrower, loan.id).loan == loan
    assert events_of_request(suite, request_id) == []


def test_submitting_needs_a_lender(suite: Suite, borrower: Account, journey: Journey) -> None:
    loan = new_loan(suite.loans, borrower)
    new_kpi(suite.loans, borrower, loan.id)

    response = journey.move("SubmitLoan", loan.id)

    assert failure(response) == (PRECONDITION, "LENDER_REQUIRED", [])


def test_submitting_needs_a_kpi(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    loan = new_loan(suite.loans, borrower, lender)

    response = journey.move("SubmitLoan", loan.id)

    assert failure(response) == (PRECONDITION, "KPIS_REQUIRED", [])
    assert get_loan(suite.loans, borrower, loan.id).loan == loan


def test_approving_needs_every_kpi_accepted(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    loan = journey.draft(accepted=True).loan
    proposed = new_kpi(suite.loans, borrower, loan.id)
    submitted = journey.move("SubmitLoan", loan.id).loan

    response = journey.move("ApproveLoan", loan.id)
    accept_kpi(suite.loans, lender, proposed.id)
    approved = journey.move("ApproveLoan", loan.id)

    assert failure(response) == (PRECONDITION, "KPIS_NOT_ALL_ACCEPTED", [])
    assert submitted.state == pb.LOAN_STATE_PENDING_APPROVAL
    assert approved.loan.state == pb.LOAN_STATE_APPROVED


def test_approving_a_loan_whose_kpis_were_all_deleted_is_refused(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.to("PENDING_APPROVAL")
    request = pb.DeleteKpiRequest(kpi_id=at.kpi.id)
    deleted = suite.loans.DeleteKpi(request, metadata=borrower.metadata)
    assert deleted.HasField("deletion"), deleted.error

    response = journey.move("ApproveLoan", at.loan.id)

    assert failure(response) == (PRECONDITION, "KPIS_REQUIRED", [])


@pytest.mark.parametrize("rpc", list(TRANSITIONS))
def test_each_transition_belongs_to_one_party(
    suite: Suite,
    borrower: Account,
    lender: Account,
    journey: Journey,
    loans_by_state: dict[str, pb.Loan],
    rpc: str,
) -> None:
    # A state the rpc may leave, so that only the party is wrong.
    state = next(state for name, state in sorted(LEGAL) if name == rpc)
    loan = loans_by_state[state]
    party = TRANSITIONS[rpc][1]
    wrong = lender if party == "borrower" else borrower

    # An empty reason too: the party is checked before the reason.
    fields = {"reason": ""} if rpc == "RejectLoan" else {}
    response = journey.move(rpc, loan.id, by=wrong, **fields)

    denied: Failure = (DENIED, f"NOT_THE_{party.upper()}", [])
    assert failure(response) == denied
    assert get_loan(suite.loans, borrower, loan.id).loan == loan


def test_outsiders_see_neither_transitions_nor_history(
    suite: Suite, journey: Journey, loans_by_state: dict[str, pb.Loan]
) -> None:
    loan = loans_by_state["PENDING_APPROVAL"]
    outsider_lender = suite.register("LENDER")

    approve = journey.move("ApproveLoan", loan.id, by=outsider_lender)
    seen = history(suite, outsider_lender, loan.id)

    assert failure(approve) == (NOT_FOUND, "LOAN_NOT_FOUND", [])
    assert failure(seen) == (NOT_FOUND, "LOAN_NOT_FOUND", [])


def test_a_stale_etag_is_aborted(suite: Suite, borrower: Account, journey: Journey) -> None:
    loan = journey.draft(accepted=True).loan
    reinvited = invite(suite.loans, borrower, loan.id, suite.register("LENDER"))

    stale = journey.move("WithdrawLoan", loan.id, etag=loan.etag)
    fresh = journey.move("WithdrawLoan", loan.id, etag=reinvited.etag)

    assert failure(stale) == (ABORTED, "ETAG_MISMATCH", [])
    assert fresh.loan.state == pb.LOAN_STATE_WITHDRAWN


def test_a_replayed_transition_returns_the_original_and_writes_once(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    loan = journey.draft(accepted=True).loan
    request_id = new_id()

    first = journey.move("SubmitLoan", loan.id, request_id=request_id)
    journey.move("WithdrawLoan", loan.id)
    second = journey.move("SubmitLoan", loan.id, request_id=request_id)

    assert first.loan.state == pb.LOAN_STATE_PENDING_APPROVAL
    assert second == first
    assert [e["action"] for e in events_of_request(suite, request_id)] == ["LOAN_SUBMITTED"]
    changes = history(suite, borrower, loan.id).history.changes
    assert [c.to_state for c in changes] == [
        pb.LOAN_STATE_PENDING_APPROVAL,
        pb.LOAN_STATE_WITHDRAWN,
    ]


def test_a_new_loan_has_no_history(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)

    response = history(suite, borrower, loan.id)

    assert response.WhichOneof("result") == "history"
    assert list(response.history.changes) == []
