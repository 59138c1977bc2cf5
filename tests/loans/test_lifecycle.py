"""The loan lifecycle through real RPCs: transitions, their rules, history and audit events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.lending import (
    assert_error,
    audit_events,
    get_loan,
    insert_kpi,
    invite,
    new_id,
    new_loan,
    sql,
    tagged,
)
from tests.support import Account, Suite

PRECONDITION = error_pb2.ERROR_CODE_FAILED_PRECONDITION
REASON = "The KPIs are not ambitious enough."

# rpc name -> (request type, who calls it)
RPCS: dict[str, tuple[type[Any], str]] = {
    "SubmitLoan": (pb.SubmitLoanRequest, "borrower"),
    "ApproveLoan": (pb.ApproveLoanRequest, "lender"),
    "RejectLoan": (pb.RejectLoanRequest, "lender"),
    "WithdrawLoan": (pb.WithdrawLoanRequest, "borrower"),
    "ActivateLoan": (pb.ActivateLoanRequest, "lender"),
    "CloseLoan": (pb.CloseLoanRequest, "lender"),
}
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
STATES = ["DRAFT", "PENDING_APPROVAL", "APPROVED", "ACTIVE", "CLOSED", "REJECTED", "WITHDRAWN"]
# How to bring a ready DRAFT loan (lender invited, KPIs accepted) into each state.
PATHS = {
    "DRAFT": [],
    "PENDING_APPROVAL": ["SubmitLoan"],
    "APPROVED": ["SubmitLoan", "ApproveLoan"],
    "ACTIVE": ["SubmitLoan", "ApproveLoan", "ActivateLoan"],
    "CLOSED": ["SubmitLoan", "ApproveLoan", "ActivateLoan", "CloseLoan"],
    "REJECTED": ["SubmitLoan", "RejectLoan"],
    "WITHDRAWN": ["WithdrawLoan"],
}


class Parties:
    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.borrower = suite.register("BORROWER")
        self.lender = suite.register("LENDER")

    def call(
        self,
        rpc: str,
        loan_id: str,
        *,
        by: Account | None = None,
        request_id: str = "",
        **fields: Any,
    ) -> Any:
        """Call a transition rpc as its own party (or by another) with request_id as key and tag."""
        request_type, party = RPCS[rpc]
        if rpc == "RejectLoan":
            fields.setdefault("reason", REASON)
        account: Account = by or getattr(self, party)
        metadata = tagged(account, request_id) if request_id else account.metadata
        method: Callable[..., Any] = getattr(self.suite.loans, rpc)
        request = request_type(loan_id=loan_id, request_id=request_id, **fields)
        return method(request, metadata=metadata)

    def ready_loan(self, *, kpis: tuple[str, ...] = ("ACCEPTED",)) -> pb.Loan:
        """A DRAFT loan with a lender and KPIs of the given statuses."""
        loan = invite(
            self.suite, self.borrower, new_loan(self.suite, self.borrower).id, self.lender
        )
        for status in kpis:
            insert_kpi(self.suite, loan.id, status=status)
        return loan

    def loan_in(self, state: str) -> pb.Loan:
        loan = self.ready_loan()
        for rpc in PATHS[state]:
            response = self.call(rpc, loan.id)
            assert response.HasField("loan"), response.error
            loan = response.loan
        return loan


@pytest.fixture(scope="module")
def parties(suite: Suite) -> Parties:
    return Parties(suite)


@pytest.fixture(scope="module")
def loans_by_state(parties: Parties) -> dict[str, pb.Loan]:
    """One loan in each state; illegal transitions leave them as they are."""
    return {state: parties.loan_in(state) for state in STATES}


def history(suite: Suite, account: Account, loan_id: str) -> pb.ListLoanHistoryResponse:
    request = pb.ListLoanHistoryRequest(loan_id=loan_id)
    return suite.loans.ListLoanHistory(request, metadata=account.metadata)


def test_the_happy_path_from_draft_to_closed(suite: Suite, parties: Parties) -> None:
    loan = parties.ready_loan()
    steps = [
        ("SubmitLoan", "PENDING_APPROVAL", "LOAN_SUBMITTED", parties.borrower),
        ("ApproveLoan", "APPROVED", "LOAN_APPROVED", parties.lender),
        ("ActivateLoan", "ACTIVE", "LOAN_ACTIVATED", parties.lender),
        ("CloseLoan", "CLOSED", "LOAN_CLOSED", parties.lender),
    ]
    before, etags = "DRAFT", {loan.etag}

    for rpc, state, action, actor in steps:
        request_id = new_id()
        response = parties.call(rpc, loan.id, etag=loan.etag, request_id=request_id)
        assert response.loan.state == pb.LoanState.Value(f"LOAN_STATE_{state}"), response.error
        [event] = audit_events(suite, request_id)
        assert (event["action"], event["resource_id"]) == (action, loan.id)
        assert event["actor_user_id"] == actor.user_id
        assert event["changes"] == [["state", json.dumps(before), json.dumps(state)]]
        assert sorted(event["organization_ids"]) == sorted(
            [parties.borrower.organization_id, parties.lender.organization_id]
        )
        loan, before = response.loan, state
        etags.add(loan.etag)

    assert len(etags) == len(steps) + 1
    changes = history(suite, parties.lender, loan.id).history.changes
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
    assert history(suite, parties.borrower, loan.id) == history(suite, parties.lender, loan.id)


def test_a_rejection_records_its_reason(suite: Suite, parties: Parties) -> None:
    loan = parties.loan_in("PENDING_APPROVAL")
    request_id = new_id()

    response = parties.call("RejectLoan", loan.id, reason=f"  {REASON} ", request_id=request_id)

    assert response.loan.state == pb.LOAN_STATE_REJECTED
    last = history(suite, parties.borrower, loan.id).history.changes[-1]
    assert (last.to_state, last.reason) == (pb.LOAN_STATE_REJECTED, REASON)
    [event] = audit_events(suite, request_id)
    assert event["action"] == "LOAN_REJECTED"
    assert ["reason", "", json.dumps(REASON)] in event["changes"]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("", "REASON_REQUIRED"), ("   ", "REASON_REQUIRED"), ("x" * 1001, "REASON_TOO_LONG")],
)
def test_a_rejection_needs_a_reason_of_at_most_1000_characters(
    parties: Parties, loans_by_state: dict[str, pb.Loan], reason: str, expected: str
) -> None:
    loan = loans_by_state["PENDING_APPROVAL"]

    response = parties.call("RejectLoan", loan.id, reason=reason)

    assert_error(response, error_pb2.ERROR_CODE_INVALID_ARGUMENT, expected, "reason")
    assert get_loan(parties.suite, parties.lender, loan.id).loan == loan


@pytest.mark.parametrize("state", ["DRAFT", "PENDING_APPROVAL"])
def test_the_borrower_withdraws_a_draft_or_pending_loan(
    suite: Suite, parties: Parties, state: str
) -> None:
    loan = parties.loan_in(state)
    request_id = new_id()

    response = parties.call("WithdrawLoan", loan.id, request_id=request_id)

    assert response.loan.state == pb.LOAN_STATE_WITHDRAWN
    assert [e["action"] for e in audit_events(suite, request_id)] == ["LOAN_WITHDRAWN"]
    changes = history(suite, parties.borrower, loan.id).history.changes
    assert changes[-1].from_state == pb.LoanState.Value(f"LOAN_STATE_{state}")


@pytest.mark.parametrize(
    ("rpc", "state"),
    [(rpc, state) for rpc in RPCS for state in STATES if (rpc, state) not in LEGAL],
)
def test_an_illegal_transition_is_refused_and_names_the_rule(
    suite: Suite, parties: Parties, loans_by_state: dict[str, pb.Loan], rpc: str, state: str
) -> None:
    loan = loans_by_state[state]
    request_id = new_id()

    response = parties.call(rpc, loan.id, request_id=request_id)

    assert_error(response, PRECONDITION, ILLEGAL_REASON[rpc])
    assert get_loan(suite, parties.borrower, loan.id).loan == loan
    assert audit_events(suite, request_id) == []


def test_submitting_needs_a_lender(suite: Suite, parties: Parties) -> None:
    loan = new_loan(suite, parties.borrower)
    insert_kpi(suite, loan.id)

    response = parties.call("SubmitLoan", loan.id)

    assert_error(response, PRECONDITION, "LENDER_REQUIRED")


def test_submitting_needs_a_kpi(parties: Parties) -> None:
    loan = parties.ready_loan(kpis=())

    response = parties.call("SubmitLoan", loan.id)

    assert_error(response, PRECONDITION, "KPIS_REQUIRED")
    assert get_loan(parties.suite, parties.borrower, loan.id).loan == loan


def test_approving_needs_every_kpi_accepted(suite: Suite, parties: Parties) -> None:
    loan = parties.ready_loan(kpis=("ACCEPTED", "PROPOSED"))
    submitted = parties.call("SubmitLoan", loan.id).loan

    response = parties.call("ApproveLoan", loan.id)
    sql(suite, "UPDATE kpis SET status = 'ACCEPTED' WHERE loan_id = :id", id=loan.id)
    approved = parties.call("ApproveLoan", loan.id)

    assert_error(response, PRECONDITION, "KPIS_NOT_ALL_ACCEPTED")
    assert submitted.state == pb.LOAN_STATE_PENDING_APPROVAL
    assert approved.loan.state == pb.LOAN_STATE_APPROVED


def test_approving_a_loan_whose_kpis_were_all_deleted_is_refused(
    suite: Suite, parties: Parties
) -> None:
    loan = parties.loan_in("PENDING_APPROVAL")
    sql(suite, "DELETE FROM kpis WHERE loan_id = :id", id=loan.id)

    response = parties.call("ApproveLoan", loan.id)

    assert_error(response, PRECONDITION, "KPIS_REQUIRED")


@pytest.mark.parametrize("rpc", list(RPCS))
def test_each_transition_belongs_to_one_party(
    parties: Parties, loans_by_state: dict[str, pb.Loan], rpc: str
) -> None:
    # A state the rpc may leave, so that only the party is wrong.
    state = next(state for name, state in sorted(LEGAL) if name == rpc)
    loan = loans_by_state[state]
    party = RPCS[rpc][1]
    wrong = "lender" if party == "borrower" else "borrower"

    # An empty reason too: the party is checked before the reason.
    fields = {"reason": ""} if rpc == "RejectLoan" else {}
    response = parties.call(rpc, loan.id, by=getattr(parties, wrong), **fields)

    assert_error(response, error_pb2.ERROR_CODE_PERMISSION_DENIED, f"NOT_THE_{party.upper()}")
    assert get_loan(parties.suite, parties.borrower, loan.id).loan == loan


def test_outsiders_see_neither_transitions_nor_history(
    suite: Suite, parties: Parties, loans_by_state: dict[str, pb.Loan]
) -> None:
    loan = loans_by_state["PENDING_APPROVAL"]
    outsider_lender = suite.register("LENDER")

    approve = parties.call("ApproveLoan", loan.id, by=outsider_lender)
    seen = history(suite, outsider_lender, loan.id)

    assert_error(approve, error_pb2.ERROR_CODE_NOT_FOUND, "LOAN_NOT_FOUND")
    assert_error(seen, error_pb2.ERROR_CODE_NOT_FOUND, "LOAN_NOT_FOUND")


def test_a_stale_etag_is_aborted(suite: Suite, parties: Parties) -> None:
    loan = parties.ready_loan()
    reinvited = invite(suite, parties.borrower, loan.id, suite.register("LENDER"))

    stale = parties.call("WithdrawLoan", loan.id, etag=loan.etag)
    fresh = parties.call("WithdrawLoan", loan.id, etag=reinvited.etag)

    assert_error(stale, error_pb2.ERROR_CODE_ABORTED, "ETAG_MISMATCH")
    assert fresh.loan.state == pb.LOAN_STATE_WITHDRAWN


def test_a_replayed_transition_returns_the_original_and_writes_once(
    suite: Suite, parties: Parties
) -> None:
    loan = parties.ready_loan()
    request_id = new_id()

    first = parties.call("SubmitLoan", loan.id, request_id=request_id)
    parties.call("WithdrawLoan", loan.id)
    second = parties.call("SubmitLoan", loan.id, request_id=request_id)

    assert first.loan.state == pb.LOAN_STATE_PENDING_APPROVAL
    assert second == first
    assert [e["action"] for e in audit_events(suite, request_id)] == ["LOAN_SUBMITTED"]
    changes = history(suite, parties.borrower, loan.id).history.changes
    assert [c.to_state for c in changes] == [
        pb.LOAN_STATE_PENDING_APPROVAL,
        pb.LOAN_STATE_WITHDRAWN,
    ]


def test_a_new_loan_has_no_history(suite: Suite, parties: Parties) -> None:
    loan = new_loan(suite, parties.borrower)

    response = history(suite, parties.borrower, loan.id)

    assert response.WhichOneof("result") == "history"
    assert list(response.history.changes) == []
