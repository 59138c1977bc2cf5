"""Verification and margin adjustments through the real RPCs: judged, clamped, paged."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import actions, count, events, set_state
from tests.loans.envelope import ABORTED, INVALID, NOT_FOUND, PRECONDITION, Failure, failure
from tests.loans.factories import (
    FAILED,
    MEET,
    MISS,
    PASSED,
    SHARE_KPI,
    report,
    reported,
    verified,
    verify,
)
from tests.loans.journey import Journey
from tests.support import Account, Suite


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
    journey: Journey,
    kpi_fields: dict[str, Any],
    value: str,
    outcome: int,
    requested: int,
) -> None:
    kpi = journey.to("ACTIVE", **kpi_fields).kpi
    result_id = reported(suite.loans, borrower, kpi.id, value=value)

    verification = verified(suite.loans, lender, result_id)

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
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE", ratchet=None)
    result_id = reported(suite.loans, borrower, at.kpi.id, value=MISS)

    verification = verified(suite.loans, lender, result_id)

    assert verification.kpi_result.outcome == FAILED
    assert not verification.HasField("adjustment")
    assert count(suite, "margin_adjustments", loan_id=at.loan.id) == 0
    assert actions(suite, result_id) == ["KPI_RESULT_REPORTED", "KPI_RESULT_VERIFIED"]


def test_the_running_total_is_clamped_to_the_cap(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    kpi = journey.to("ACTIVE", ratchet={"step_up_bps": 20, "step_down_bps": 10, "cap_bps": 30}).kpi
    values = [MISS, MISS, MISS, MEET, MEET, MEET, MEET, MEET, MEET]

    steps = []
    for n, value in enumerate(values):
        adjustment = verified(
            suite.loans, lender, reported(suite.loans, borrower, kpi.id, value, n)
        ).adjustment
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
    last = verified(suite.loans, lender, reported(suite.loans, borrower, kpi.id, MEET, len(values)))
    assert (last.adjustment.applied_bps, last.adjustment.cumulative_bps) == (0, -30)


def test_verifying_a_restatement_replaces_the_restated_results_adjustment(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    kpi = journey.to("ACTIVE", ratchet={"step_up_bps": 20, "step_down_bps": 10, "cap_bps": 30}).kpi
    missed = reported(suite.loans, borrower, kpi.id, MISS)
    assert verified(suite.loans, lender, missed).adjustment.cumulative_bps == 20

    restated = report(suite.loans, borrower, kpi.id, MEET, restates_result_id=missed).kpi_result
    adjustment = verified(suite.loans, lender, restated.id).adjustment

    # The miss no longer counts: the total is what the pass alone asks for.
    assert (adjustment.requested_bps, adjustment.applied_bps, adjustment.cumulative_bps) == (
        -10,
        -30,
        -10,
    )


def test_only_a_reported_result_of_an_active_loan_is_verified(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE")
    once = reported(suite.loans, borrower, at.kpi.id, n=0)
    result = verified(suite.loans, lender, once).kpi_result
    replaced = reported(suite.loans, borrower, at.kpi.id, n=1)
    report(suite.loans, borrower, at.kpi.id, n=1, restates_result_id=replaced)
    pending = report(suite.loans, borrower, at.kpi.id, n=2).kpi_result

    not_reported: Failure = (PRECONDITION, "RESULT_NOT_REPORTED", [])
    assert failure(verify(suite.loans, lender, once)) == not_reported
    assert failure(verify(suite.loans, lender, replaced)) == not_reported
    stale = verify(suite.loans, lender, once, etag=pending.etag)
    assert failure(stale) == (ABORTED, "ETAG_MISMATCH", [])
    assert verify(suite.loans, lender, once, etag=result.etag).error.reason == "RESULT_NOT_REPORTED"
    set_state(suite, at.loan.id, "CLOSED")
    assert failure(verify(suite.loans, lender, pending.id)) == (PRECONDITION, "LOAN_NOT_ACTIVE", [])


def adjustments_page(
    suite: Suite, account: Account, loan_id: str, size: int, token: str = ""
) -> pb.ListMarginAdjustmentsResponse:
    request = pb.ListMarginAdjustmentsRequest(loan_id=loan_id, page_size=size, page_token=token)
    return suite.loans.ListMarginAdjustments(request, metadata=account.metadata)


def test_adjustments_are_paged_oldest_first_with_tokens_bound_to_the_loan(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE")
    other_loan = journey.to("ACTIVE").loan
    made = [
        verified(
            suite.loans, lender, reported(suite.loans, borrower, at.kpi.id, MISS, n)
        ).adjustment.id
        for n in range(3)
    ]

    first = adjustments_page(suite, borrower, at.loan.id, 2).page
    second = adjustments_page(suite, lender, at.loan.id, 2, first.next_page_token).page

    assert [a.id for a in first.adjustments] == made[:2]
    assert [a.id for a in second.adjustments] == made[2:]
    assert not second.next_page_token
    token = first.next_page_token
    invalid: Failure = (INVALID, "PAGE_TOKEN_INVALID", [])
    assert failure(adjustments_page(suite, borrower, other_loan.id, 2, token)) == invalid
    assert failure(adjustments_page(suite, borrower, at.loan.id, 2, token[:-2] + "xx")) == invalid
    outsider = suite.register("BORROWER")
    hidden = adjustments_page(suite, outsider, at.loan.id, 2)
    assert failure(hidden) == (NOT_FOUND, "LOAN_NOT_FOUND", [])


def test_a_replayed_verification_returns_the_original_and_adjusts_once(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE")
    result_id = reported(suite.loans, borrower, at.kpi.id, MISS)
    request_id = f"verify-{uuid.uuid4().hex}"

    first = verify(suite.loans, lender, result_id, request_id=request_id)
    second = verify(suite.loans, lender, result_id, request_id=request_id)

    assert first.HasField("verification")
    assert second == first
    assert count(suite, "margin_adjustments", loan_id=at.loan.id) == 1
    assert actions(suite, result_id) == ["KPI_RESULT_REPORTED", "KPI_RESULT_VERIFIED"]
    assert actions(suite, first.verification.adjustment.id) == ["MARGIN_ADJUSTED"]


def test_a_loan_taken_through_its_real_lifecycle_adjusts_its_margin(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    # Invited, KPI and ratchet agreed, submitted, approved, activated: each by its own RPC.
    kpi = journey.to("ACTIVE", ratchet={"step_up_bps": 15, "step_down_bps": 5, "cap_bps": 40}).kpi

    verification = verified(suite.loans, lender, reported(suite.loans, borrower, kpi.id, MISS))

    assert (verification.kpi_result.outcome, verification.adjustment.applied_bps) == (FAILED, 15)
