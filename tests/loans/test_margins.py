"""Verification and margin adjustments through the real RPCs: judged, clamped, paged."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.kpi_support import (
    FAILED,
    MEET,
    MISS,
    PASSED,
    SHARE_KPI,
    accept,
    actions,
    active,
    count,
    events,
    failure,
    new_kpi,
    new_loan,
    new_ratchet,
    report,
    reported,
    set_loan,
    verified,
    verify,
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


@pytest.mark.parametrize(
    ("kpi_fields", "value", "outcome", "requested"),
    [
        ({}, "9000", PASSED, -10),  # lower is better: meeting the target exactly passes
        ({}, "9000.000001", FAILED, 20),
        (SHARE_KPI, "60.25", PASSED, -10),  # higher is better, target 60.25
        (SHARE_KPI, "60.249999", FAILED, 20),
    ],
)
def test_verification_judges_by_direction_and_target(
    suite: Suite,
    borrower: Account,
    lender: Account,
    kpi_fields: dict[str, Any],
    value: str,
    outcome: int,
    requested: int,
) -> None:
    _, kpi = active(suite, borrower, lender, **kpi_fields)
    result_id = reported(suite, borrower, kpi.id, value=value)

    verification = verified(suite, lender, result_id)

    result, adjustment = verification.kpi_result, verification.adjustment
    assert (result.status, result.outcome) == (pb.KPI_RESULT_STATUS_VERIFIED, outcome)
    assert result.verifier_user_id == lender.user_id
    assert result.HasField("verify_time")
    assert (adjustment.kpi_result_id, adjustment.kpi_id, adjustment.outcome) == (
        result_id,
        kpi.id,
        outcome,
    )
    assert (adjustment.requested_bps, adjustment.applied_bps) == (requested, requested)
    assert adjustment.cumulative_bps == requested
    assert actions(suite, result_id) == ["KPI_RESULT_REPORTED", "KPI_RESULT_VERIFIED"]
    [adjusted] = events(suite, adjustment.id)
    assert (adjusted["action"], adjusted["resource_type"]) == (
        "MARGIN_ADJUSTED",
        "margin_adjustment",
    )
    assert ["applied_bps", "", json.dumps(requested)] in adjusted["changes"]


def test_without_a_ratchet_verification_adjusts_nothing(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan, kpi = active(suite, borrower, lender, ratchet=None)
    result_id = reported(suite, borrower, kpi.id, value=MISS)

    verification = verified(suite, lender, result_id)

    assert verification.kpi_result.outcome == FAILED
    assert not verification.HasField("adjustment")
    assert count(suite, "margin_adjustments", loan_id=loan.id) == 0
    assert actions(suite, result_id) == ["KPI_RESULT_REPORTED", "KPI_RESULT_VERIFIED"]


def test_the_running_total_is_clamped_to_the_cap(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    _, kpi = active(suite, borrower, lender, ratchet=(20, 10, 30))
    values = [MISS, MISS, MISS, MEET, MEET, MEET, MEET, MEET, MEET]

    steps = []
    for n, value in enumerate(values):
        adjustment = verified(suite, lender, reported(suite, borrower, kpi.id, value, n)).adjustment
        steps.append((adjustment.requested_bps, adjustment.applied_bps, adjustment.cumulative_bps))

    assert steps == [
        (20, 20, 20),
        (20, 10, 30),  # clamped at +cap
        (20, 0, 30),
        (-10, -10, 20),
        (-10, -10, 10),
        (-10, -10, 0),
        (-10, -10, -10),
        (-10, -10, -20),
        (-10, -10, -30),
    ]
    last = verified(suite, lender, reported(suite, borrower, kpi.id, MEET, len(values)))
    assert (last.adjustment.applied_bps, last.adjustment.cumulative_bps) == (0, -30)


def test_verifying_a_restatement_replaces_the_restated_results_adjustment(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    _, kpi = active(suite, borrower, lender, ratchet=(20, 10, 30))
    missed = reported(suite, borrower, kpi.id, MISS)
    assert verified(suite, lender, missed).adjustment.cumulative_bps == 20

    restated = report(suite, borrower, kpi.id, MEET, restates_result_id=missed).kpi_result
    adjustment = verified(suite, lender, restated.id).adjustment

    # The miss no longer counts: the total is what the pass alone asks for.
    assert (adjustment.requested_bps, adjustment.applied_bps, adjustment.cumulative_bps) == (
        -10,
        -30,
        -10,
    )


def test_only_a_reported_result_of_an_active_loan_is_verified(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan, kpi = active(suite, borrower, lender)
    once = reported(suite, borrower, kpi.id, n=0)
    result = verified(suite, lender, once).kpi_result
    replaced = reported(suite, borrower, kpi.id, n=1)
    report(suite, borrower, kpi.id, n=1, restates_result_id=replaced)
    pending = report(suite, borrower, kpi.id, n=2).kpi_result

    not_reported = (PRECONDITION, "RESULT_NOT_REPORTED", [])
    assert failure(verify(suite, lender, once)) == not_reported
    assert failure(verify(suite, lender, replaced)) == not_reported
    stale = verify(suite, lender, once, etag=pending.etag)
    assert failure(stale) == (error_pb2.ERROR_CODE_ABORTED, "ETAG_MISMATCH", [])
    assert verify(suite, lender, once, etag=result.etag).error.reason == "RESULT_NOT_REPORTED"
    set_loan(suite, loan.id, state="CLOSED")
    assert failure(verify(suite, lender, pending.id)) == (PRECONDITION, "LOAN_NOT_ACTIVE", [])


def adjustments_page(
    suite: Suite, account: Account, loan_id: str, size: int, token: str = ""
) -> pb.ListMarginAdjustmentsResponse:
    request = pb.ListMarginAdjustmentsRequest(loan_id=loan_id, page_size=size, page_token=token)
    return suite.loans.ListMarginAdjustments(request, metadata=account.metadata)


def test_adjustments_are_paged_oldest_first_with_tokens_bound_to_the_loan(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan, kpi = active(suite, borrower, lender)
    other_loan, _ = active(suite, borrower, lender)
    made = [
        verified(suite, lender, reported(suite, borrower, kpi.id, MISS, n)).adjustment.id
        for n in range(3)
    ]

    first = adjustments_page(suite, borrower, loan.id, 2).page
    second = adjustments_page(suite, lender, loan.id, 2, first.next_page_token).page

    assert [a.id for a in first.adjustments] == made[:2]
    assert [a.id for a in second.adjustments] == made[2:]
    assert not second.next_page_token
    token = first.next_page_token
    invalid = (INVALID, "PAGE_TOKEN_INVALID", [])
    assert failure(adjustments_page(suite, borrower, other_loan.id, 2, token)) == invalid
    assert failure(adjustments_page(suite, borrower, loan.id, 2, token[:-2] + "xx")) == invalid
    outsider = suite.register("BORROWER")
    hidden = adjustments_page(suite, outsider, loan.id, 2)
    assert failure(hidden) == (error_pb2.ERROR_CODE_NOT_FOUND, "LOAN_NOT_FOUND", [])


def test_a_replayed_verification_returns_the_original_and_adjusts_once(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan, kpi = active(suite, borrower, lender)
    result_id = reported(suite, borrower, kpi.id, MISS)
    request_id = f"verify-{uuid.uuid4().hex}"

    first = verify(suite, lender, result_id, request_id=request_id)
    second = verify(suite, lender, result_id, request_id=request_id)

    assert first.HasField("verification")
    assert second == first
    assert count(suite, "margin_adjustments", loan_id=loan.id) == 1
    assert actions(suite, result_id) == ["KPI_RESULT_REPORTED", "KPI_RESULT_VERIFIED"]
    assert actions(suite, first.verification.adjustment.id) == ["MARGIN_ADJUSTED"]


def test_a_loan_taken_through_its_real_lifecycle_adjusts_its_margin(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loans = suite.loans
    loan = new_loan(suite, borrower)
    invited = loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email=lender.email),
        metadata=borrower.metadata,
    )
    assert invited.HasField("loan"), invited.error
    kpi = new_kpi(suite, borrower, loan.id)
    new_ratchet(suite, borrower, loan.id, kpi.id, up=15, down=5, cap=40)
    accept(suite, lender, kpi.id)
    steps = [
        (loans.SubmitLoan, pb.SubmitLoanRequest, borrower),
        (loans.ApproveLoan, pb.ApproveLoanRequest, lender),
        (loans.ActivateLoan, pb.ActivateLoanRequest, lender),
    ]
    for rpc, request_type, account in steps:
        moved = rpc(request_type(loan_id=loan.id), metadata=account.metadata)
        assert moved.HasField("loan"), moved.error

    verification = verified(suite, lender, reported(suite, borrower, kpi.id, MISS))

    assert (verification.kpi_result.outcome, verification.adjustment.applied_bps) == (FAILED, 15)
