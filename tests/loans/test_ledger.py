"""Drawdowns, repayments and the ledger through the real RPCs: rules, balances, races, audit."""

from __future__ import annotations

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import actions, count, events_of_request
from tests.loans.envelope import INVALID, PRECONDITION, failure, new_id, tagged
from tests.loans.facility_support import Started, approved, drawdown, started_last_year
from tests.loans.factories import get_loan, new_loan
from tests.loans.journey import call
from tests.loans.test_concurrency import race
from tests.loans.watching import Watches
from tests.support import Account, Suite

RATCHET = {"step_up_bps": 20, "step_down_bps": 10, "cap_bps": 30}
# The loan template: committed 1000000.00, drawn 250000.50, so 749999.50 is left to draw.
LEFT = "749999.50"


@pytest.fixture
def active(suite: Suite, borrower: Account, lender: Account) -> Started:
    return started_last_year(suite.loans, borrower, lender, RATCHET)


def test_a_requested_drawdown_moves_nothing_until_the_lender_approves(
    suite: Suite, borrower: Account, lender: Account, active: Started
) -> None:
    loan_id = active.loan.id
    request_id = new_id()
    response = suite.loans.RequestDrawdown(
        pb.RequestDrawdownRequest(loan_id=loan_id, amount="100000", note="Turbines"),
        metadata=tagged(borrower, request_id),
    )
    requested = response.drawdown
    assert (requested.status, requested.amount, requested.note) == (
        pb.DRAWDOWN_STATUS_REQUESTED,
        "100000.00",
        "Turbines",
    )
    assert get_loan(suite.loans, borrower, loan_id).loan.drawn_amount == "250000.50"
    [event] = events_of_request(suite, request_id)
    assert (event["action"], event["resource_id"]) == ("DRAWDOWN_REQUESTED", requested.id)

    approval = approved(suite.loans, lender, requested.id)

    entry = approval.entry
    assert approval.drawdown.status == pb.DRAWDOWN_STATUS_APPROVED
    assert approval.drawdown.ledger_entry_id == entry.id
    assert approval.drawdown.decider_user_id == lender.user_id
    assert (entry.sequence, entry.entry_type, entry.drawdown_id) == (
        1,
        pb.LEDGER_ENTRY_TYPE_DRAWDOWN,
        requested.id,
    )
    assert (entry.amount, entry.drawn_amount, entry.outstanding_amount) == (
        "100000.00",
        "350000.50",
        "350000.50",
    )
    loan = get_loan(suite.loans, lender, loan_id).loan
    assert (loan.drawn_amount, loan.outstanding_amount) == ("350000.50", "350000.50")
    assert actions(suite, requested.id) == ["DRAWDOWN_REQUESTED", "DRAWDOWN_APPROVED"]


def test_a_repayment_lowers_what_is_outstanding_not_what_was_drawn(
    suite: Suite, borrower: Account, lender: Account, active: Started
) -> None:
    loan_id = active.loan.id
    approved(suite.loans, lender, drawdown(suite.loans, borrower, loan_id, "100000.00").id)

    entry = call(suite.loans, "RecordRepayment", lender, loan_id=loan_id, amount="50000.25")

    assert (entry.sequence, entry.entry_type) == (2, pb.LEDGER_ENTRY_TYPE_REPAYMENT)
    assert (entry.drawn_amount, entry.outstanding_amount) == ("350000.50", "300000.25")
    assert actions(suite, entry.id) == ["REPAYMENT_RECORDED"]
    page = call(suite.loans, "ListLedgerEntries", borrower, loan_id=loan_id)
    assert [e.sequence for e in page.entries] == [1, 2]
    assert (page.currency_code, page.drawn_amount, page.outstanding_amount) == (
        "EUR",
        "350000.50",
        "300000.25",
    )


def test_a_repayment_beyond_what_is_outstanding_is_refused(
    suite: Suite, lender: Account, active: Started
) -> None:
    request = pb.RecordRepaymentRequest(loan_id=active.loan.id, amount="250000.51")

    response = suite.loans.RecordRepayment(request, metadata=lender.metadata)

    assert failure(response) == (PRECONDITION, "REPAYMENT_EXCEEDS_OUTSTANDING", ["amount"])
    everything = call(
        suite.loans, "RecordRepayment", lender, loan_id=active.loan.id, amount="250000.50"
    )
    assert everything.outstanding_amount == "0.00"


def test_a_drawdown_beyond_committed_minus_drawn_is_refused(
    suite: Suite, borrower: Account, lender: Account, active: Started
) -> None:
    request = pb.RequestDrawdownRequest(loan_id=active.loan.id, amount="749999.51")

    response = suite.loans.RequestDrawdown(request, metadata=borrower.metadata)

    assert failure(response) == (PRECONDITION, "DRAWDOWN_EXCEEDS_AVAILABLE", ["amount"])
    everything = approved(
        suite.loans, lender, drawdown(suite.loans, borrower, active.loan.id, LEFT).id
    )
    assert everything.entry.drawn_amount == "1000000.00"
    assert count(suite, "drawdowns", loan_id=active.loan.id) == 1


@pytest.mark.parametrize("round_", range(3))
def test_two_approvals_racing_never_overdraw(
    suite: Suite, borrower: Account, lender: Account, round_: int
) -> None:
    loan_id = started_last_year(suite.loans, borrower, lender, RATCHET).loan.id
    # Each fits what is left on its own; both together do not.
    requests = [drawdown(suite.loans, borrower, loan_id, "500000.00") for _ in range(2)]

    responses = race(
        lambda i: suite.loans.ApproveDrawdown(
            pb.ApproveDrawdownRequest(drawdown_id=requests[i].id), metadata=lender.metadata
        )
    )

    won = [r for r in responses if r.HasField("approval")]
    lost = [failure(r) for r in responses if r.HasField("error")]
    assert len(won) == 1
    assert lost == [(PRECONDITION, "DRAWDOWN_EXCEEDS_AVAILABLE", ["amount"])]
    assert get_loan(suite.loans, borrower, loan_id).loan.drawn_amount == "750000.50"
    assert count(suite, "ledger_entries", loan_id=loan_id) == 1


def test_a_rejection_needs_a_reason_and_draws_nothing(
    suite: Suite, borrower: Account, lender: Account, active: Started
) -> None:
    requested = drawdown(suite.loans, borrower, active.loan.id, "1000.00")
    no_reason = pb.RejectDrawdownRequest(drawdown_id=requested.id, reason="  ")
    assert failure(suite.loans.RejectDrawdown(no_reason, metadata=lender.metadata)) == (
        INVALID,
        "REASON_REQUIRED",
        ["reason"],
    )

    rejected = call(
        suite.loans, "RejectDrawdown", lender, drawdown_id=requested.id, reason="No invoices"
    )

    assert (rejected.status, rejected.rejection_reason) == (
        pb.DRAWDOWN_STATUS_REJECTED,
        "No invoices",
    )
    again = pb.ApproveDrawdownRequest(drawdown_id=requested.id)
    assert failure(suite.loans.ApproveDrawdown(again, metadata=lender.metadata))[:2] == (
        PRECONDITION,
        "DRAWDOWN_ALREADY_DECIDED",
    )
    assert get_loan(suite.loans, borrower, active.loan.id).loan.drawn_amount == "250000.50"
    assert actions(suite, requested.id) == ["DRAWDOWN_REQUESTED", "DRAWDOWN_REJECTED"]


@pytest.mark.parametrize(
    ("amount", "note", "violation"),
    [
        ("", "", ("amount", "AMOUNT_REQUIRED")),
        ("0.00", "", ("amount", "AMOUNT_NOT_POSITIVE")),
        ("-5", "", ("amount", "AMOUNT_NEGATIVE")),
        ("10.001", "", ("amount", "AMOUNT_TOO_PRECISE")),
        ("1e3", "", ("amount", "AMOUNT_NOT_DECIMAL")),
        ("10", "Invoice \u202efdp.exe", ("note", "NOTE_HAS_BIDI_CONTROLS")),
        ("10", "bell\x07", ("note", "NOTE_HAS_CONTROL_CHARACTERS")),
    ],
)
def test_bad_amounts_and_notes_are_refused_naming_the_field(
    suite: Suite,
    borrower: Account,
    lender: Account,
    active: Started,
    amount: str,
    note: str,
    violation: tuple[str, str],
) -> None:
    loan_id = active.loan.id
    drawn = pb.RequestDrawdownRequest(loan_id=loan_id, amount=amount, note=note)
    repaid = pb.RecordRepaymentRequest(loan_id=loan_id, amount=amount, note=note)

    for response in (
        suite.loans.RequestDrawdown(drawn, metadata=borrower.metadata),
        suite.loans.RecordRepayment(repaid, metadata=lender.metadata),
    ):
        code, reason, fields = failure(response)
        assert (code, fields, reason) == (INVALID, [violation[0]], violation[1])
    assert count(suite, "drawdowns", loan_id=loan_id) == 0
    assert count(suite, "ledger_entries", loan_id=loan_id) == 0


def test_money_moves_only_on_active_loans(suite: Suite, borrower: Account, lender: Account) -> None:
    loan = new_loan(suite.loans, borrower, lender)
    drawn = pb.RequestDrawdownRequest(loan_id=loan.id, amount="10.00")
    repaid = pb.RecordRepaymentRequest(loan_id=loan.id, amount="10.00")

    assert failure(suite.loans.RequestDrawdown(drawn, metadata=borrower.metadata))[:2] == (
        PRECONDITION,
        "LOAN_NOT_ACTIVE",
    )
    assert failure(suite.loans.RecordRepayment(repaid, metadata=lender.metadata))[:2] == (
        PRECONDITION,
        "LOAN_NOT_ACTIVE",
    )


def test_a_retried_request_returns_the_original_and_writes_once(
    suite: Suite, borrower: Account, active: Started
) -> None:
    request = pb.RequestDrawdownRequest(
        loan_id=active.loan.id, amount="10.00", request_id=f"draw-{new_id()}"
    )

    first = suite.loans.RequestDrawdown(request, metadata=borrower.metadata)
    second = suite.loans.RequestDrawdown(request, metadata=borrower.metadata)

    assert first.HasField("drawdown"), first.error
    assert first == second
    assert count(suite, "drawdowns", loan_id=active.loan.id) == 1


def test_the_ledger_pages_oldest_first_with_tokens_of_its_own_loan(
    suite: Suite, borrower: Account, lender: Account, active: Started
) -> None:
    for amount in ("1.00", "2.00", "3.00"):
        call(suite.loans, "RecordRepayment", lender, loan_id=active.loan.id, amount=amount)

    first = call(suite.loans, "ListLedgerEntries", borrower, loan_id=active.loan.id, page_size=2)
    rest = call(
        suite.loans,
        "ListLedgerEntries",
        borrower,
        loan_id=active.loan.id,
        page_size=2,
        page_token=first.next_page_token,
    )

    assert [e.amount for e in first.entries] == ["1.00", "2.00"]
    assert [e.amount for e in rest.entries] == ["3.00"]
    assert rest.next_page_token == ""
    other = started_last_year(suite.loans, borrower, lender, RATCHET).loan.id
    misused = pb.ListLedgerEntriesRequest(loan_id=other, page_token=first.next_page_token)
    response = suite.loans.ListLedgerEntries(misused, metadata=borrower.metadata)
    assert failure(response)[0] == INVALID


def test_both_parties_hear_of_each_movement(
    suite: Suite, borrower: Account, lender: Account, active: Started, watches: Watches
) -> None:
    borrower_watch = watches.subscribe(suite.loans, borrower)
    lender_watch = watches.subscribe(suite.loans, lender)

    requested = drawdown(suite.loans, borrower, active.loan.id, "5.00")

    for watch in (borrower_watch, lender_watch):
        change = watch.change()
        assert (change.loan_id, change.kind) == (active.loan.id, pb.CHANGE_KIND_LEDGER_CHANGED)
    loan = get_loan(suite.loans, borrower, active.loan.id).loan
    assert change.etag == loan.etag
    assert requested.loan_id == loan.id
