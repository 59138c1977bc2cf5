"""KPI results through the real RPCs: reported on ACTIVE loans, restated, listed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import actions, events, set_state
from tests.loans.envelope import DENIED, INVALID, NOT_FOUND, PRECONDITION, failure
from tests.loans.factories import (
    MISS,
    SHARE_KPI,
    accept_kpi,
    get_loan,
    listed,
    new_kpi,
    new_loan,
    report,
    reported,
    verify,
)
from tests.loans.journey import Journey
from tests.support import Account, Suite


def test_the_borrower_reports_a_result_of_an_accepted_kpi(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE")
    before = get_loan(suite.loans, borrower, at.loan.id).loan.etag

    response = report(suite.loans, borrower, at.kpi.id, value="8750.50", note=" audited ")

    result = response.kpi_result
    assert (result.loan_id, result.kpi_id) == (at.loan.id, at.kpi.id)
    assert (result.period_start, result.period_end) == ("2027-01-01", "2027-03-31")
    assert (result.value, result.note) == ("8750.5", "audited")
    assert (result.status, result.outcome) == (
        pb.KPI_RESULT_STATUS_REPORTED,
        pb.KPI_OUTCOME_UNSPECIFIED,
    )
    assert result.reporter_user_id == borrower.user_id
    assert not result.verifier_user_id
    assert not result.HasField("verify_time")
    assert get_loan(suite.loans, borrower, at.loan.id).loan.etag != before
    [event] = events(suite, result.id)
    assert (event["action"], event["resource_type"]) == ("KPI_RESULT_REPORTED", "kpi_result")
    assert sorted(event["organization_ids"]) == sorted(
        [borrower.organization_id, lender.organization_id]
    )


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"period_start": ""}, "period_start", "DATE_REQUIRED"),
        ({"period_start": "2027-04-31"}, "period_start", "DATE_DOES_NOT_EXIST"),
        ({"period_end": "2027/03/31"}, "period_end", "DATE_INVALID_FORMAT"),
        ({"period_end": "2027-01-01"}, "period_end", "PERIOD_END_NOT_AFTER_START"),
        ({"period_end": "2026-12-31"}, "period_end", "PERIOD_END_NOT_AFTER_START"),
        ({"value": ""}, "value", "VALUE_REQUIRED"),
        ({"value": "-3"}, "value", "VALUE_NEGATIVE"),
        ({"value": "9.1e3"}, "value", "VALUE_NOT_DECIMAL"),
        ({"value": "1.0000001"}, "value", "VALUE_TOO_PRECISE"),
        ({"value": "9" * 16}, "value", "VALUE_TOO_LARGE"),
        ({"note": "n" * 2001}, "note", "NOTE_TOO_LONG"),
    ],
)
def test_each_result_rule_names_its_field_and_reason(
    suite: Suite,
    borrower: Account,
    journey: Journey,
    fields: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    kpi = journey.to("ACTIVE").kpi
    assert failure(report(suite.loans, borrower, kpi.id, **fields)) == (INVALID, reason, [field])


def test_a_share_result_is_a_percentage(suite: Suite, borrower: Account, journey: Journey) -> None:
    kpi = journey.to("ACTIVE", **SHARE_KPI).kpi

    too_much = report(suite.loans, borrower, kpi.id, value="100.5")

    assert failure(too_much) == (INVALID, "VALUE_NOT_A_PERCENTAGE", ["value"])
    assert report(suite.loans, borrower, kpi.id, value="100").kpi_result.value == "100"


def test_results_are_reported_on_active_loans_for_accepted_kpis_only(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower, lender)
    kpi, proposed = new_kpi(suite.loans, borrower, loan.id), new_kpi(suite.loans, borrower, loan.id)
    accept_kpi(suite.loans, lender, kpi.id)
    set_state(suite, loan.id, "ACTIVE")  # with `proposed` never reviewed

    not_accepted = report(suite.loans, borrower, proposed.id)
    assert failure(not_accepted) == (PRECONDITION, "KPI_NOT_ACCEPTED", [])
    for state in ("APPROVED", "CLOSED"):
        set_state(suite, loan.id, state)
        assert failure(report(suite.loans, borrower, kpi.id)) == (
            PRECONDITION,
            "LOAN_NOT_ACTIVE",
            [],
        )
        # Validation first, then the state.
        assert failure(report(suite.loans, borrower, kpi.id, value="x"))[1] == "VALUE_NOT_DECIMAL"


def test_only_the_borrower_reports_and_only_the_lender_verifies(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    kpi = journey.to("ACTIVE").kpi
    result_id = reported(suite.loans, borrower, kpi.id)
    denied = DENIED

    assert failure(report(suite.loans, lender, kpi.id, n=1)) == (denied, "NOT_THE_BORROWER", [])
    assert failure(verify(suite.loans, borrower, result_id)) == (denied, "NOT_THE_LENDER", [])
    outsider = suite.register("LENDER")
    hidden = verify(suite.loans, outsider, result_id)
    assert failure(hidden) == (NOT_FOUND, "KPI_RESULT_NOT_FOUND", [])
    missing = verify(suite.loans, lender, str(uuid.uuid4()))
    assert failure(missing) == (NOT_FOUND, "KPI_RESULT_NOT_FOUND", [])


def test_periods_of_one_kpi_never_overlap(suite: Suite, borrower: Account, lender: Account) -> None:
    loan = new_loan(suite.loans, borrower, lender)
    kpi, other = new_kpi(suite.loans, borrower, loan.id), new_kpi(suite.loans, borrower, loan.id)
    accept_kpi(suite.loans, lender, kpi.id)
    accept_kpi(suite.loans, lender, other.id)
    set_state(suite, loan.id, "ACTIVE")
    first = reported(suite.loans, borrower, kpi.id, n=0)

    # Periods are observation periods (test_reporting_rules.py): an overlap is the same one.
    overlapping = report(suite.loans, borrower, kpi.id, n=0)
    assert failure(overlapping) == (PRECONDITION, "PERIOD_OVERLAPS", [])
    assert first in overlapping.error.message
    assert reported(suite.loans, borrower, kpi.id, n=1)
    assert reported(suite.loans, borrower, other.id, n=0)  # another KPI has its own periods


def test_a_restatement_supersedes_the_result_it_restates(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE")
    original = reported(suite.loans, borrower, at.kpi.id, value=MISS)

    restated = report(suite.loans, borrower, at.kpi.id, value="8999", restates_result_id=original)

    new = restated.kpi_result
    assert (new.status, new.restates_result_id, new.value) == (
        pb.KPI_RESULT_STATUS_REPORTED,
        original,
        "8999",
    )
    results = {result.id: result for result in listed(suite.loans, lender, at.loan.id)}
    assert list(results) == [original, new.id]  # kept, never deleted
    assert results[original].status == pb.KPI_RESULT_STATUS_SUPERSEDED
    assert results[original].superseded_by_result_id == new.id
    assert actions(suite, original) == ["KPI_RESULT_REPORTED", "KPI_RESULT_SUPERSEDED"]
    assert actions(suite, new.id) == ["KPI_RESULT_REPORTED"]
    # A superseded result cannot be restated twice, nor does it block its period.
    again = report(suite.loans, borrower, at.kpi.id, restates_result_id=original)
    assert failure(again) == (PRECONDITION, "RESULT_ALREADY_SUPERSEDED", [])
    third = report(suite.loans, borrower, at.kpi.id, value="8998", restates_result_id=new.id)
    assert third.kpi_result.restates_result_id == new.id


def test_a_restatement_names_a_result_of_the_same_kpi_and_still_may_not_overlap(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    kpi = journey.to("ACTIVE").kpi
    stranger_kpi = journey.to("ACTIVE").kpi
    first = reported(suite.loans, borrower, kpi.id, n=0)
    reported(suite.loans, borrower, kpi.id, n=1)
    elsewhere = reported(suite.loans, borrower, stranger_kpi.id, n=0)

    foreign = report(suite.loans, borrower, kpi.id, restates_result_id=elsewhere)
    spanning = report(suite.loans, borrower, kpi.id, n=1, restates_result_id=first)

    assert failure(foreign) == (INVALID, "RESULT_NOT_IN_KPI", ["restates_result_id"])
    assert failure(spanning) == (PRECONDITION, "PERIOD_OVERLAPS", [])


def test_results_are_listed_per_loan_or_per_kpi(
    suite: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE")
    elsewhere = journey.to("ACTIVE").kpi
    first = reported(suite.loans, borrower, at.kpi.id, n=0)
    second = reported(suite.loans, borrower, at.kpi.id, n=1)

    assert [r.id for r in listed(suite.loans, borrower, at.loan.id)] == [first, second]
    assert [r.id for r in listed(suite.loans, lender, at.loan.id, at.kpi.id)] == [first, second]
    request = pb.ListKpiResultsRequest(loan_id=at.loan.id, kpi_id=elsewhere.id)
    foreign = suite.loans.ListKpiResults(request, metadata=borrower.metadata)
    assert failure(foreign) == (INVALID, "KPI_NOT_IN_LOAN", ["kpi_id"])
