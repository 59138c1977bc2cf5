"""Margin ratchets through the real RPCs: one per KPI of the loan, basis points 0 to 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.kpi_support import (
    actions,
    count,
    events,
    failure,
    loan_etag,
    new_kpi,
    new_loan,
    new_ratchet,
    set_loan,
)
from tests.support import Account, Suite

INVALID = error_pb2.ERROR_CODE_INVALID_ARGUMENT


@pytest.fixture(scope="module")
def borrower(suite: Suite) -> Account:
    return suite.register("BORROWER")


@pytest.fixture(scope="module")
def lender(suite: Suite) -> Account:
    return suite.register("LENDER")


@pytest.fixture(scope="module")
def loan(suite: Suite, borrower: Account, lender: Account) -> pb.Loan:
    return new_loan(suite, borrower, lender)


def create(
    suite: Suite, account: Account, loan_id: str, kpi_id: str, **bps: Any
) -> pb.CreateMarginRatchetResponse:
    values = {"step_up_bps": 25, "step_down_bps": 10, "cap_bps": 50, **bps}
    request = pb.CreateMarginRatchetRequest(loan_id=loan_id, kpi_id=kpi_id, **values)
    return suite.loans.CreateMarginRatchet(request, metadata=account.metadata)


def update(
    suite: Suite,
    account: Account,
    ratchet_id: str,
    *,
    paths: list[str] | None = None,
    **fields: Any,
) -> pb.UpdateMarginRatchetResponse:
    etag = fields.pop("etag", "")
    mask = FieldMask(paths=list(fields) if paths is None else paths)
    request = pb.UpdateMarginRatchetRequest(
        ratchet_id=ratchet_id, etag=etag, update_mask=mask, **fields
    )
    return suite.loans.UpdateMarginRatchet(request, metadata=account.metadata)


def delete(
    suite: Suite, account: Account, ratchet_id: str, etag: str = ""
) -> pb.DeleteMarginRatchetResponse:
    request = pb.DeleteMarginRatchetRequest(ratchet_id=ratchet_id, etag=etag)
    return suite.loans.DeleteMarginRatchet(request, metadata=account.metadata)


def test_a_borrower_attaches_a_ratchet_to_a_kpi(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    before = loan_etag(suite, borrower, loan.id)

    ratchet = create(suite, borrower, loan.id, kpi.id).ratchet

    assert (ratchet.loan_id, ratchet.kpi_id) == (loan.id, kpi.id)
    assert (ratchet.step_up_bps, ratchet.step_down_bps, ratchet.cap_bps) == (25, 10, 50)
    assert ratchet.etag
    assert loan_etag(suite, borrower, loan.id) != before
    [event] = events(suite, ratchet.id)
    assert (event["action"], event["resource_type"]) == ("MARGIN_RATCHET_CREATED", "margin_ratchet")
    assert sorted(event["organization_ids"]) == sorted(
        [borrower.organization_id, lender.organization_id]
    )
    assert ["cap_bps", "", "50"] in event["changes"]


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
    kpi = new_kpi(suite, borrower, loan.id)
    response = create(suite, borrower, loan.id, kpi.id, **bps)
    assert failure(response) == (INVALID, "BPS_OUT_OF_RANGE", violated)


def test_the_bounds_themselves_are_allowed(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    ratchet = create(suite, borrower, loan.id, kpi.id, step_up_bps=500, step_down_bps=0).ratchet
    assert (ratchet.step_up_bps, ratchet.step_down_bps) == (500, 0)


def test_the_kpi_must_belong_to_the_loan(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    other_loan = new_loan(suite, borrower)
    foreign = new_kpi(suite, borrower, other_loan.id)
    stranger = suite.register("BORROWER")
    strangers_kpi = new_kpi(suite, stranger, new_loan(suite, stranger).id)

    for kpi_id in (foreign.id, strangers_kpi.id, str(uuid.uuid4()), "not-a-uuid"):
        response = create(suite, borrower, loan.id, kpi_id)
        assert failure(response) == (INVALID, "KPI_NOT_IN_LOAN", ["kpi_id"])
    assert failure(create(suite, borrower, loan.id, "")) == (INVALID, "KPI_ID_REQUIRED", ["kpi_id"])


def test_a_kpi_has_at_most_one_ratchet(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    create(suite, borrower, loan.id, kpi.id)

    second = create(suite, borrower, loan.id, kpi.id, cap_bps=10)

    assert failure(second) == (error_pb2.ERROR_CODE_ALREADY_EXISTS, "RATCHET_EXISTS", [])
    assert count(suite, "margin_ratchets", kpi_id=kpi.id) == 1


def test_only_the_borrower_changes_ratchets(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    ratchet = new_ratchet(suite, borrower, loan.id, kpi.id, up=10, down=10, cap=20)
    denied = (error_pb2.ERROR_CODE_PERMISSION_DENIED, "NOT_THE_BORROWER", [])

    assert failure(create(suite, lender, loan.id, kpi.id)) == denied
    assert failure(update(suite, lender, ratchet.id, cap_bps=30)) == denied
    assert failure(delete(suite, lender, ratchet.id)) == denied
    outsider = suite.register("BORROWER")
    hidden = update(suite, outsider, ratchet.id, cap_bps=30)
    assert failure(hidden) == (error_pb2.ERROR_CODE_NOT_FOUND, "RATCHET_NOT_FOUND", [])


def test_ratchets_change_only_while_the_loan_is_draft_or_pending_approval(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite, borrower, lender)
    kpi, spare = new_kpi(suite, borrower, loan.id), new_kpi(suite, borrower, loan.id)
    ratchet = new_ratchet(suite, borrower, loan.id, kpi.id, up=10, down=10, cap=20)
    set_loan(suite, loan.id, state="PENDING_APPROVAL")
    assert update(suite, borrower, ratchet.id, cap_bps=40).ratchet.cap_bps == 40

    set_loan(suite, loan.id, state="APPROVED")

    not_editable = (error_pb2.ERROR_CODE_FAILED_PRECONDITION, "LOAN_NOT_EDITABLE", [])
    assert failure(create(suite, borrower, loan.id, spare.id)) == not_editable
    assert failure(update(suite, borrower, ratchet.id, cap_bps=60)) == not_editable
    assert failure(delete(suite, borrower, ratchet.id)) == not_editable
    out_of_range = update(suite, borrower, ratchet.id, cap_bps=600)
    assert failure(out_of_range)[:2] == (INVALID, "BPS_OUT_OF_RANGE")


def test_an_update_changes_only_the_masked_basis_points(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    ratchet = new_ratchet(suite, borrower, loan.id, kpi.id, up=10, down=10, cap=20)

    updated = update(suite, borrower, ratchet.id, paths=["cap_bps"], cap_bps=35, step_up_bps=99)

    assert (updated.ratchet.step_up_bps, updated.ratchet.cap_bps) == (10, 35)
    assert updated.ratchet.etag != ratchet.etag
    assert actions(suite, ratchet.id) == ["MARGIN_RATCHET_CREATED", "MARGIN_RATCHET_UPDATED"]
    assert events(suite, ratchet.id)[1]["changes"] == [["cap_bps", json.dumps(20), json.dumps(35)]]


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
    kpi = new_kpi(suite, borrower, loan.id)
    ratchet = new_ratchet(suite, borrower, loan.id, kpi.id, up=10, down=10, cap=20)

    assert failure(update(suite, borrower, ratchet.id, **fields)) == (INVALID, reason, violated)
    assert actions(suite, ratchet.id) == ["MARGIN_RATCHET_CREATED"]


def test_a_stale_etag_is_aborted(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    ratchet = new_ratchet(suite, borrower, loan.id, kpi.id, up=10, down=10, cap=20)
    fresh = update(suite, borrower, ratchet.id, cap_bps=30, etag=ratchet.etag).ratchet

    aborted = (error_pb2.ERROR_CODE_ABORTED, "ETAG_MISMATCH", [])
    assert failure(update(suite, borrower, ratchet.id, cap_bps=40, etag=ratchet.etag)) == aborted
    assert failure(delete(suite, borrower, ratchet.id, etag=ratchet.etag)) == aborted
    assert delete(suite, borrower, ratchet.id, etag=fresh.etag).HasField("deletion")


def test_deleting_a_ratchet_keeps_its_kpi(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    ratchet = new_ratchet(suite, borrower, loan.id, kpi.id, up=10, down=10, cap=20)

    response = delete(suite, borrower, ratchet.id)

    assert response.deletion.ratchet_id == ratchet.id
    assert count(suite, "margin_ratchets", id=ratchet.id) == 0
    assert count(suite, "kpis", id=kpi.id) == 1
    assert actions(suite, ratchet.id) == ["MARGIN_RATCHET_CREATED", "MARGIN_RATCHET_DELETED"]
    not_found = (error_pb2.ERROR_CODE_NOT_FOUND, "RATCHET_NOT_FOUND", [])
    assert failure(delete(suite, borrower, ratchet.id)) == not_found
    # The KPI is free for a new ratchet.
    assert create(suite, borrower, loan.id, kpi.id).HasField("ratchet")


def test_a_replayed_create_returns_the_original_and_writes_once(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite, borrower, loan.id)
    request_id = f"ratchet-{uuid.uuid4().hex}"

    first = create(suite, borrower, loan.id, kpi.id, request_id=request_id)
    second = create(suite, borrower, loan.id, kpi.id, request_id=request_id)

    assert first.HasField("ratchet")
    assert second == first
    assert count(suite, "margin_ratchets", kpi_id=kpi.id) == 1
    assert actions(suite, first.ratchet.id) == ["MARGIN_RATCHET_CREATED"]
