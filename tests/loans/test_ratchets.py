"""Margin ratchets through the real RPCs: one per KPI of the loan, basis points 0 to 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import actions, count, events, set_state
from tests.loans.envelope import ABORTED, DENIED, INVALID, NOT_FOUND, PRECONDITION, Failure, failure
from tests.loans.factories import (
    RATCHET,
    create_ratchet,
    get_loan,
    new_kpi,
    new_loan,
    new_ratchet,
    update_ratchet,
)
from tests.support import Account, Suite


def delete_ratchet(
    suite: Suite, account: Account, ratchet_id: str, etag: str = ""
) -> pb.DeleteMarginRatchetResponse:
    request = pb.DeleteMarginRatchetRequest(ratchet_id=ratchet_id, etag=etag)
    return suite.loans.DeleteMarginRatchet(request, metadata=account.metadata)


def test_a_borrower_attaches_a_ratchet_to_a_kpi(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    before = get_loan(suite.loans, borrower, loan.id).loan.etag

    ratchet = create_ratchet(suite.loans, borrower, loan.id, kpi.id).ratchet

    assert (ratchet.loan_id, ratchet.kpi_id) == (loan.id, kpi.id)
    assert {name: getattr(ratchet, name) for name in RATCHET} == RATCHET
    assert ratchet.etag
    assert get_loan(suite.loans, borrower, loan.id).loan.etag != before
    [event] = events(suite, ratchet.id)
    assert (event["action"], event["resource_type"]) == ("MARGIN_RATCHET_CREATED", "margin_ratchet")
    assert sorted(event["organization_ids"]) == sorted(
        [borrower.organization_id, lender.organization_id]
    )
    assert ["cap_bps", "", json.dumps(RATCHET["cap_bps"])] in event["changes"]


@pytest.mark.parametrize(
    ("bps", "violated"),
    [
        ({"step_up_bps": 501}, ["step_up_bps"]),
        ({"step_down_bps": -1}, ["step_down_bps"]),
        ({"cap_bps": 1000}, ["cap_bps"]),
        ({"step_up_bps": -5, "cap_bps": 501}, ["step_up_bps", "cap_bps"]),
    ],
)
def test_basis_points_must_be_from_0_to_500(
    suite: Suite, borrower: Account, loan: pb.Loan, bps: dict[str, int], violated: list[str]
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    response = create_ratchet(suite.loans, borrower, loan.id, kpi.id, **bps)
    assert failure(response) == (INVALID, "BPS_OUT_OF_RANGE", violated)


def test_the_bounds_themselves_are_allowed(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    ratchet = create_ratchet(
        suite.loans, borrower, loan.id, kpi.id, step_up_bps=500, step_down_bps=0
    ).ratchet
    assert (ratchet.step_up_bps, ratchet.step_down_bps) == (500, 0)


def test_the_kpi_must_belong_to_the_loan(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    other_loan = new_loan(suite.loans, borrower)
    foreign = new_kpi(suite.loans, borrower, other_loan.id)
    stranger = suite.register("BORROWER")
    strangers_kpi = new_kpi(suite.loans, stranger, new_loan(suite.loans, stranger).id)

    for kpi_id in (foreign.id, strangers_kpi.id, str(uuid.uuid4()), "not-a-uuid"):
        response = create_ratchet(suite.loans, borrower, loan.id, kpi_id)
        assert failure(response) == (INVALID, "KPI_NOT_IN_LOAN", ["kpi_id"])
    assert failure(create_ratchet(suite.loans, borrower, loan.id, "")) == (
        INVALID,
        "KPI_ID_REQUIRED",
        ["kpi_id"],
    )


def test_a_kpi_has_at_most_one_ratchet(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    create_ratchet(suite.loans, borrower, loan.id, kpi.id)

    second = create_ratchet(suite.loans, borrower, loan.id, kpi.id, cap_bps=10)

    assert failure(second) == (error_pb2.ERROR_CODE_ALREADY_EXISTS, "RATCHET_EXISTS", [])
    assert count(suite, "margin_ratchets", kpi_id=kpi.id) == 1


def test_only_the_borrower_changes_ratchets(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    ratchet = new_ratchet(suite.loans, borrower, loan.id, kpi.id)
    denied: Failure = (DENIED, "NOT_THE_BORROWER", [])

    assert failure(create_ratchet(suite.loans, lender, loan.id, kpi.id)) == denied
    assert failure(update_ratchet(suite.loans, lender, ratchet.id, cap_bps=40)) == denied
    assert failure(delete_ratchet(suite, lender, ratchet.id)) == denied
    outsider = suite.register("BORROWER")
    hidden = update_ratchet(suite.loans, outsider, ratchet.id, cap_bps=40)
    assert failure(hidden) == (NOT_FOUND, "RATCHET_NOT_FOUND", [])


def test_ratchets_change_only_while_the_loan_is_draft_or_pending_approval(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower, lender)
    kpi, spare = new_kpi(suite.loans, borrower, loan.id), new_kpi(suite.loans, borrower, loan.id)
    ratchet = new_ratchet(suite.loans, borrower, loan.id, kpi.id)
    set_state(suite, loan.id, "PENDING_APPROVAL")
    assert update_ratchet(suite.loans, borrower, ratchet.id, cap_bps=40).ratchet.cap_bps == 40

    set_state(suite, loan.id, "APPROVED")

    not_editable: Failure = (PRECONDITION, "LOAN_NOT_EDITABLE", [])
    assert failure(create_ratchet(suite.loans, borrower, loan.id, spare.id)) == not_editable
    assert failure(update_ratchet(suite.loans, borrower, ratchet.id, cap_bps=60)) == not_editable
    assert failure(delete_ratchet(suite, borrower, ratchet.id)) == not_editable
    out_of_range = update_ratchet(suite.loans, borrower, ratchet.id, cap_bps=600)
    assert failure(out_of_range)[:2] == (INVALID, "BPS_OUT_OF_RANGE")


def test_an_update_changes_only_the_masked_basis_points(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    ratchet = new_ratchet(suite.loans, borrower, loan.id, kpi.id)

    updated = update_ratchet(
        suite.loans, borrower, ratchet.id, paths=["cap_bps"], cap_bps=35, step_up_bps=99
    )

    assert (updated.ratchet.step_up_bps, updated.ratchet.cap_bps) == (RATCHET["step_up_bps"], 35)
    assert updated.ratchet.etag != ratchet.etag
    assert actions(suite, ratchet.id) == ["MARGIN_RATCHET_CREATED", "MARGIN_RATCHET_UPDATED"]
    change = ["cap_bps", json.dumps(RATCHET["cap_bps"]), json.dumps(35)]
    assert events(suite, ratchet.id)[1]["changes"] == [change]


@pytest.mark.parametrize(
    ("fields", "violated", "reason"),
    [
        ({"paths": []}, ["update_mask"], "UPDATE_MASK_REQUIRED"),
        ({"paths": ["kpi_id"]}, ["update_mask"], "UPDATE_MASK_INVALID"),
        ({"step_down_bps": 501}, ["step_down_bps"], "BPS_OUT_OF_RANGE"),
    ],
)
def test_an_invalid_update_changes_nothing(
    suite: Suite,
    borrower: Account,
    loan: pb.Loan,
    fields: dict[str, Any],
    violated: list[str],
    reason: str,
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    ratchet = new_ratchet(suite.loans, borrower, loan.id, kpi.id)

    assert failure(update_ratchet(suite.loans, borrower, ratchet.id, **fields)) == (
        INVALID,
        reason,
        violated,
    )
    assert actions(suite, ratchet.id) == ["MARGIN_RATCHET_CREATED"]


def test_a_stale_etag_is_aborted(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    ratchet = new_ratchet(suite.loans, borrower, loan.id, kpi.id)
    fresh = update_ratchet(suite.loans, borrower, ratchet.id, cap_bps=40, etag=ratchet.etag).ratchet

    aborted: Failure = (ABORTED, "ETAG_MISMATCH", [])
    assert (
        failure(update_ratchet(suite.loans, borrower, ratchet.id, cap_bps=45, etag=ratchet.etag))
        == aborted
    )
    assert failure(delete_ratchet(suite, borrower, ratchet.id, etag=ratchet.etag)) == aborted
    assert delete_ratchet(suite, borrower, ratchet.id, etag=fresh.etag).HasField("deletion")


def test_deleting_a_ratchet_keeps_its_kpi(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    ratchet = new_ratchet(suite.loans, borrower, loan.id, kpi.id)

    response = delete_ratchet(suite, borrower, ratchet.id)

    assert response.deletion.ratchet_id == ratchet.id
    assert count(suite, "margin_ratchets", id=ratchet.id) == 0
    assert count(suite, "kpis", id=kpi.id) == 1
    assert actions(suite, ratchet.id) == ["MARGIN_RATCHET_CREATED", "MARGIN_RATCHET_DELETED"]
    not_found: Failure = (NOT_FOUND, "RATCHET_NOT_FOUND", [])
    assert failure(delete_ratchet(suite, borrower, ratchet.id)) == not_found
    # The KPI is free for a new ratchet.
    assert create_ratchet(suite.loans, borrower, loan.id, kpi.id).HasField("ratchet")


def test_a_replayed_create_returns_the_original_and_writes_once(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    request_id = f"ratchet-{uuid.uuid4().hex}"

    first = create_ratchet(suite.loans, borrower, loan.id, kpi.id, request_id=request_id)
    second = create_ratchet(suite.loans, borrower, loan.id, kpi.id, request_id=request_id)

    assert first.HasField("ratchet")
    assert second == first
    assert count(suite, "margin_ratchets", kpi_id=kpi.id) == 1
    assert actions(suite, first.ratchet.id) == ["MARGIN_RATCHET_CREATED"]
