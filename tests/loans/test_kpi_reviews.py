"""KPI edits and reviews through the real RPCs: any edit sends a KPI back to the lender."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import text

from services.loans.aggregate import Event, LoanChange, save
from services.loans.models import Kpi, Loan
from services.loans.vocabulary import ChangeKind
from services.shared._types import Change
from services.shared.db import Database
from services.shared.errors import AbortedError
from services.shared.identity import Caller, Role
from tests.loans.database import actions, events
from tests.loans.envelope import ABORTED, DENIED, INVALID, NOT_FOUND, PRECONDITION, failure
from tests.loans.factories import accept_kpi, new_kpi, reject_kpi, update_kpi
from tests.support import Account, Suite


def test_an_update_changes_only_the_masked_fields(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)

    response = update_kpi(
        suite.loans,
        borrower,
        kpi.id,
        name="Scope 1 emissions",
        target_value="8500.25",
        unit="ignored",
        paths=["name", "target_value"],
    )

    updated = response.kpi
    assert (updated.name, updated.target_value, updated.unit) == (
        "Scope 1 emissions",
        "8500.25",
        "tCO2e",
    )
    assert updated.etag != kpi.etag
    assert actions(suite, kpi.id) == ["KPI_CREATED", "KPI_UPDATED"]
    changes = events(suite, kpi.id)[1]["changes"]
    assert sorted(field for field, _, _ in changes) == ["name", "target_value"]


@pytest.mark.parametrize(
    ("fields", "violated", "reason"),
    [
        ({"paths": []}, ["update_mask"], "UPDATE_MASK_REQUIRED"),
        ({"paths": ["name", "status"], "name": "x"}, ["update_mask"], "UPDATE_MASK_INVALID"),
        ({"paths": ["loan_id"]}, ["update_mask"], "UPDATE_MASK_INVALID"),
        ({"target_value": "0"}, ["target_value"], "TARGET_NOT_POSITIVE"),
        # The merged KPI is validated: a rule spanning old and new values still holds.
        ({"effective_to": "2026-06-30"}, ["effective_to"], "EFFECTIVE_TO_NOT_AFTER_FROM"),
        (
            {"kpi_type": pb.KPI_TYPE_WASTE_RECYCLED_SHARE},
            ["unit", "baseline_value", "target_value"],
            "UNIT_MUST_BE_PERCENT",
        ),
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

    assert failure(update_kpi(suite.loans, borrower, kpi.id, **fields)) == (
        INVALID,
        reason,
        violated,
    )
    assert actions(suite, kpi.id) == ["KPI_CREATED"]


def test_a_stale_etag_is_aborted_and_a_fresh_one_accepted(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    fresh = update_kpi(suite.loans, borrower, kpi.id, name="Edited", etag=kpi.etag).kpi

    stale = update_kpi(suite.loans, borrower, kpi.id, name="Lost update", etag=kpi.etag)
    stale_delete = suite.loans.DeleteKpi(
        pb.DeleteKpiRequest(kpi_id=kpi.id, etag=kpi.etag), metadata=borrower.metadata
    )

    assert failure(stale) == (ABORTED, "ETAG_MISMATCH", [])
    assert failure(stale_delete)[1] == "ETAG_MISMATCH"
    assert (
        update_kpi(suite.loans, borrower, kpi.id, name="Again", etag=fresh.etag).kpi.name == "Again"
    )


def write_after_losing_a_race(db: Database, kpi_id: str, loan_id: str) -> None:
    """Edit a KPI whose version another writer moved after we loaded it."""
    with db.write() as session:
        row, owner = session.get_one(Kpi, kpi_id), session.get_one(Loan, loan_id)
        caller = Caller(owner.creator_user_id, owner.borrower_organization_id, Role.BORROWER)
        bump = "UPDATE kpis SET version = version + 1 WHERE id = :id"
        session.execute(text(bump), {"id": kpi_id})
        row.name = "Lost update"
        event = Event("KPI_UPDATED", "kpi", kpi_id, [Change("name", "", '"Lost update"')])
        now = datetime.now(UTC)
        save(session, LoanChange(caller, owner, ChangeKind.KPI_CHANGED, [event], now))


def test_a_row_version_that_moved_under_a_write_aborts_it(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    db = Database(suite.settings.database_url("loans"))
    try:
        with pytest.raises(AbortedError) as caught:
            write_after_losing_a_race(db, kpi.id, loan.id)
    finally:
        db.dispose()

    assert caught.value.reason == "ETAG_MISMATCH"  # one reason for every lost race
    fetched = suite.loans.ListKpis(pb.ListKpisRequest(loan_id=loan.id), metadata=borrower.metadata)
    assert [k for k in fetched.kpis.kpis if k.id == kpi.id] == [kpi]  # all rolled back


def test_the_lender_accepts_a_proposed_kpi_once(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)

    accepted = accept_kpi(suite.loans, lender, kpi.id)
    again = suite.loans.AcceptKpi(pb.AcceptKpiRequest(kpi_id=kpi.id), metadata=lender.metadata)

    assert accepted.status == pb.KPI_STATUS_ACCEPTED
    assert failure(again) == (PRECONDITION, "KPI_ALREADY_REVIEWED", [])
    assert (
        failure(reject_kpi(suite.loans, lender, kpi.id, "changed my mind"))[1]
        == "KPI_ALREADY_REVIEWED"
    )
    assert actions(suite, kpi.id) == ["KPI_CREATED", "KPI_ACCEPTED"]


def test_the_lender_rejects_with_a_reason(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)

    assert failure(reject_kpi(suite.loans, lender, kpi.id, "  ")) == (
        INVALID,
        "REASON_REQUIRED",
        ["reason"],
    )
    too_long = reject_kpi(suite.loans, lender, kpi.id, "r" * 1001)
    assert failure(too_long) == (INVALID, "REASON_TOO_LONG", ["reason"])
    rejected = reject_kpi(suite.loans, lender, kpi.id, "Baseline is not verified").kpi

    assert (rejected.status, rejected.rejection_reason) == (
        pb.KPI_STATUS_REJECTED,
        "Baseline is not verified",
    )
    assert actions(suite, kpi.id) == ["KPI_CREATED", "KPI_REJECTED"]


def test_only_the_loans_lender_reviews_kpis(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    other_lender = suite.register("LENDER")

    mine = suite.loans.AcceptKpi(pb.AcceptKpiRequest(kpi_id=kpi.id), metadata=borrower.metadata)
    theirs = suite.loans.AcceptKpi(
        pb.AcceptKpiRequest(kpi_id=kpi.id), metadata=other_lender.metadata
    )

    assert failure(mine) == (DENIED, "NOT_THE_LENDER", [])
    assert failure(reject_kpi(suite.loans, borrower, kpi.id, ""))[:2] == (DENIED, "NOT_THE_LENDER")
    # Another organization's KPI is as absent as a KPI that does not exist.
    assert failure(theirs) == (NOT_FOUND, "KPI_NOT_FOUND", [])
    missing = suite.loans.AcceptKpi(
        pb.AcceptKpiRequest(kpi_id=str(uuid.uuid4())), metadata=other_lender.metadata
    )
    assert failure(missing) == (NOT_FOUND, "KPI_NOT_FOUND", [])


@pytest.mark.parametrize("review", ["accept", "reject"])
def test_editing_a_reviewed_kpi_sends_it_back_to_proposed(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan, review: str
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    if review == "accept":
        accept_kpi(suite.loans, lender, kpi.id)
    else:
        reject_kpi(suite.loans, lender, kpi.id, "Target too lax")

    edited = update_kpi(suite.loans, borrower, kpi.id, target_value="8000").kpi

    assert (edited.status, edited.rejection_reason) == (pb.KPI_STATUS_PROPOSED, "")
    assert accept_kpi(suite.loans, lender, kpi.id).status == pb.KPI_STATUS_ACCEPTED
    changes = {field: (old, new) for field, old, new in events(suite, kpi.id)[2]["changes"]}
    assert changes["status"][1] == json.dumps("KPI_STATUS_PROPOSED")
