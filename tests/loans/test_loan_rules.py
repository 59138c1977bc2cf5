"""Loan terms that hold: a new lender reviews anew, ratchets are reviewed, results judged,
activation waits for the start date (rules 1, 2, 4 and 5 of the loan's terms)."""

from __future__ import annotations

import json

from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.business_date import on
from tests.loans.database import actions, events
from tests.loans.envelope import NOT_FOUND, PRECONDITION, failure
from tests.loans.factories import (
    SHARE_KPI,
    accept_kpi,
    create_ratchet,
    invite,
    report,
    update_ratchet,
)
from tests.loans.journey import Journey, call
from tests.support import Account, Suite


def kpi_status(suite: Suite, account: Account, loan_id: str) -> list[int]:
    return [k.status for k in call(suite.loans, "ListKpis", account, loan_id=loan_id).kpis]


def reopened(suite: Suite, kpi_id: str) -> dict[str, tuple[str, str]]:
    """The changes of the KPI's last event, which must be KPI_REVIEW_REOPENED."""
    last = events(suite, kpi_id)[-1]
    assert last["action"] == "KPI_REVIEW_REOPENED"
    return {field: (old, new) for field, old, new in last["changes"]}


def test_a_new_lender_reviews_every_kpi_the_old_one_accepted(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.draft(accepted=True)
    newcomer = suite.register("LENDER")

    invite(suite.loans, borrower, at.loan.id, newcomer)

    assert kpi_status(suite, borrower, at.loan.id) == [pb.KPI_STATUS_PROPOSED]
    changes = reopened(suite, at.kpi.id)
    assert changes["status"] == ('"KPI_STATUS_ACCEPTED"', '"KPI_STATUS_PROPOSED"')
    assert changes["cause"] == ("", '"LENDER_CHANGED"')
    journey.move("SubmitLoan", at.loan.id)
    refused = journey.move("ApproveLoan", at.loan.id, by=newcomer)
    assert failure(refused) == (PRECONDITION, "KPIS_NOT_ALL_ACCEPTED", [])
    # The replaced lender has no say any more; the new one reviews and approves.
    gone = suite.loans.AcceptKpi(
        pb.AcceptKpiRequest(kpi_id=at.kpi.id), metadata=journey.lender.metadata
    )
    assert failure(gone) == (NOT_FOUND, "KPI_NOT_FOUND", [])
    accept_kpi(suite.loans, newcomer, at.kpi.id)
    assert journey.move("ApproveLoan", at.loan.id, by=newcomer).loan.state == pb.LOAN_STATE_APPROVED


def test_inviting_the_same_lender_again_keeps_its_reviews(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.draft(accepted=True)

    invite(suite.loans, borrower, at.loan.id, journey.lender)

    assert kpi_status(suite, borrower, at.loan.id) == [pb.KPI_STATUS_ACCEPTED]
    assert "KPI_REVIEW_REOPENED" not in actions(suite, at.kpi.id)


def test_a_ratchet_change_sends_its_accepted_kpi_back_to_review(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.to("PENDING_APPROVAL")
    assert at.ratchet is not None

    changed = update_ratchet(suite.loans, borrower, at.ratchet.id, step_up_bps=0, step_down_bps=500)

    assert changed.ratchet.step_down_bps == 500
    assert kpi_status(suite, borrower, at.loan.id) == [pb.KPI_STATUS_PROPOSED]
    assert reopened(suite, at.kpi.id)["cause"] == ("", '"MARGIN_RATCHET_CHANGED"')
    refused = journey.move("ApproveLoan", at.loan.id)
    assert failure(refused) == (PRECONDITION, "KPIS_NOT_ALL_ACCEPTED", [])
    accept_kpi(suite.loans, journey.lender, at.kpi.id)
    assert journey.move("ApproveLoan", at.loan.id).loan.state == pb.LOAN_STATE_APPROVED


def test_the_same_basis_points_again_change_nothing_and_keep_the_review(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.to("PENDING_APPROVAL")
    assert at.ratchet is not None

    update_ratchet(suite.loans, borrower, at.ratchet.id, cap_bps=at.ratchet.cap_bps)

    assert kpi_status(suite, borrower, at.loan.id) == [pb.KPI_STATUS_ACCEPTED]


def test_adding_or_removing_a_ratchet_reopens_the_review_too(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    bare = journey.draft(accepted=True, ratchet=None)
    assert create_ratchet(suite.loans, borrower, bare.loan.id, bare.kpi.id).HasField("ratchet")
    assert kpi_status(suite, borrower, bare.loan.id) == [pb.KPI_STATUS_PROPOSED]

    ratcheted = journey.draft(accepted=True)
    assert ratcheted.ratchet is not None
    request = pb.DeleteMarginRatchetRequest(ratchet_id=ratcheted.ratchet.id)
    assert suite.loans.DeleteMarginRatchet(request, metadata=borrower.metadata).HasField("deletion")
    assert kpi_status(suite, borrower, ratcheted.loan.id) == [pb.KPI_STATUS_PROPOSED]


def test_a_ratchet_is_refused_once_the_loan_is_approved(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.to("APPROVED")
    assert at.ratchet is not None

    refused = update_ratchet(suite.loans, borrower, at.ratchet.id, step_up_bps=0)

    assert failure(refused) == (PRECONDITION, "LOAN_NOT_EDITABLE", [])
    assert kpi_status(suite, borrower, at.loan.id) == [pb.KPI_STATUS_ACCEPTED]


def test_a_result_worse_than_the_threshold_is_a_breach(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    kpi = journey.to("ACTIVE", threshold_value="9500").kpi  # lower is better

    worse = report(suite.loans, borrower, kpi.id, "9500.01", n=0).kpi_result
    level = report(suite.loans, borrower, kpi.id, "9500", n=1).kpi_result
    unset = journey.to("ACTIVE").kpi
    no_threshold = report(suite.loans, borrower, unset.id, "99999", n=0).kpi_result

    assert (worse.breach, level.breach, no_threshold.breach) == (True, False, False)
    reported_changes = {field: new for field, _, new in events(suite, worse.id)[0]["changes"]}
    assert json.loads(reported_changes["breach"]) is True
    listed = call(suite.loans, "ListKpiResults", borrower, loan_id=kpi.loan_id)
    assert [r.breach for r in listed.kpi_results] == [True, False]


def test_a_share_below_its_threshold_is_a_breach(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    kpi = journey.to("ACTIVE", **{**SHARE_KPI, "threshold_value": "50"}).kpi  # higher is better

    below = report(suite.loans, borrower, kpi.id, "49.99", n=0).kpi_result
    above = report(suite.loans, borrower, kpi.id, "50.5", n=1).kpi_result

    assert (below.breach, above.breach) == (True, False)


def test_activation_waits_for_the_start_date(
    today: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.to("APPROVED")  # the template loan starts on 2027-01-01
    on(today, "2026-12-31")

    early = journey.move("ActivateLoan", at.loan.id)

    assert failure(early) == (PRECONDITION, "LOAN_NOT_STARTED", [])
    assert "2027-01-01" in early.error.message
    on(today, "2027-01-01")
    assert journey.move("ActivateLoan", at.loan.id).loan.state == pb.LOAN_STATE_ACTIVE
