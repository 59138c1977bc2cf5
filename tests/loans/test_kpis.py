"""KPIs through the real RPCs: proposed, validated, deleted and listed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.database import actions, count, events, set_state
from tests.loans.envelope import DENIED, INVALID, NOT_FOUND, PRECONDITION, failure
from tests.loans.factories import (
    KPI,
    SHARE_KPI,
    create_kpi,
    get_loan,
    new_kpi,
    new_loan,
    new_ratchet,
    reject_kpi,
    update_kpi,
)
from tests.support import Account, Suite


def test_a_borrower_proposes_a_kpi_and_the_loan_gets_a_new_etag(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    before = get_loan(suite.loans, borrower, loan.id).loan.etag

    kpi = new_kpi(suite.loans, borrower, loan.id, threshold_value="10000.000000")

    assert uuid.UUID(kpi.id)
    assert kpi.loan_id == loan.id
    assert (kpi.name, kpi.kpi_type, kpi.unit) == (KPI["name"], pb.KPI_TYPE_GHG_EMISSIONS, "tCO2e")
    assert kpi.direction == pb.KPI_DIRECTION_LOWER_IS_BETTER
    # Decimals come back exact, in their minimal plain form.
    assert (kpi.baseline_value, kpi.target_value, kpi.threshold_value) == (
        "12000.5",
        "9000",
        "10000",
    )
    assert kpi.observation_frequency == pb.OBSERVATION_FREQUENCY_QUARTERLY
    assert (kpi.effective_from, kpi.effective_to) == ("2027-01-01", "2031-12-31")
    assert (kpi.status, kpi.rejection_reason) == (pb.KPI_STATUS_PROPOSED, "")
    assert kpi.etag
    assert kpi.create_time == kpi.update_time
    assert get_loan(suite.loans, borrower, loan.id).loan.etag != before


def test_creating_a_kpi_writes_one_kpi_created_event_with_both_organizations(
    suite: Suite, borrower: Account, lender: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)

    [event] = events(suite, kpi.id)
    assert (event["action"], event["resource_type"], event["source"]) == (
        "KPI_CREATED",
        "kpi",
        "loans",
    )
    assert event["actor_user_id"] == borrower.user_id
    assert sorted(event["organization_ids"]) == sorted(
        [borrower.organization_id, lender.organization_id]
    )
    changes = {field: (old, new) for field, old, new in event["changes"]}
    assert changes["target_value"] == ("", json.dumps("9000"))
    assert changes["status"] == ("", json.dumps("KPI_STATUS_PROPOSED"))


def test_an_unset_threshold_stays_empty(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    assert new_kpi(suite.loans, borrower, loan.id, threshold_value="").threshold_value == ""


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"name": "  "}, "name", "NAME_REQUIRED"),
        ({"name": "x" * 201}, "name", "NAME_TOO_LONG"),
        ({"kpi_type": pb.KPI_TYPE_UNSPECIFIED}, "kpi_type", "KPI_TYPE_REQUIRED"),
        ({"kpi_type": 99}, "kpi_type", "KPI_TYPE_INVALID"),
        ({"unit": ""}, "unit", "UNIT_REQUIRED"),
        ({"unit": "u" * 41}, "unit", "UNIT_TOO_LONG"),
        ({**SHARE_KPI, "unit": "percent"}, "unit", "UNIT_MUST_BE_PERCENT"),
        ({"direction": pb.KPI_DIRECTION_UNSPECIFIED}, "direction", "DIRECTION_REQUIRED"),
        ({"direction": 7}, "direction", "DIRECTION_INVALID"),
        ({"baseline_value": ""}, "baseline_value", "VALUE_REQUIRED"),
        ({"baseline_value": "1e3"}, "baseline_value", "VALUE_NOT_DECIMAL"),
        ({"baseline_value": "12,5"}, "baseline_value", "VALUE_NOT_DECIMAL"),
        ({"baseline_value": "NaN"}, "baseline_value", "VALUE_NOT_DECIMAL"),
        ({"baseline_value": "-1"}, "baseline_value", "VALUE_NEGATIVE"),
        ({"baseline_value": "0.1234567"}, "baseline_value", "VALUE_TOO_PRECISE"),
        ({"baseline_value": "1" + "0" * 15}, "baseline_value", "VALUE_TOO_LARGE"),
        ({"target_value": "0.000"}, "target_value", "TARGET_NOT_POSITIVE"),
        ({"target_value": "-5"}, "target_value", "VALUE_NEGATIVE"),
        ({"threshold_value": "abc"}, "threshold_value", "VALUE_NOT_DECIMAL"),
        ({"threshold_value": "1.0000001"}, "threshold_value", "VALUE_TOO_PRECISE"),
        ({**SHARE_KPI, "baseline_value": "100.01"}, "baseline_value", "VALUE_NOT_A_PERCENTAGE"),
        ({**SHARE_KPI, "target_value": "101"}, "target_value", "VALUE_NOT_A_PERCENTAGE"),
        ({**SHARE_KPI, "threshold_value": "250"}, "threshold_value", "VALUE_NOT_A_PERCENTAGE"),
        (
            {"observation_frequency": pb.OBSERVATION_FREQUENCY_UNSPECIFIED},
            "observation_frequency",
            "FREQUENCY_REQUIRED",
        ),
        ({"observation_frequency": 12}, "observation_frequency", "FREQUENCY_INVALID"),
        ({"effective_from": ""}, "effective_from", "DATE_REQUIRED"),
        ({"effective_from": "2027-1-1"}, "effective_from", "DATE_INVALID_FORMAT"),
        ({"effective_from": "2027-02-30"}, "effective_from", "DATE_DOES_NOT_EXIST"),
        ({"effective_to": "31/12/2031"}, "effective_to", "DATE_INVALID_FORMAT"),
        ({"effective_to": "2027-01-01"}, "effective_to", "EFFECTIVE_TO_NOT_AFTER_FROM"),
        ({"effective_to": "2026-12-31"}, "effective_to", "EFFECTIVE_TO_NOT_AFTER_FROM"),
    ],
)
def test_each_kpi_rule_names_its_field_and_reason(
    suite: Suite, borrower: Account, loan: pb.Loan, fields: dict[str, Any], field: str, reason: str
) -> None:
    response = create_kpi(suite.loans, borrower, loan.id, **fields)
    assert failure(response) == (INVALID, reason, [field])


def test_a_share_may_be_exactly_one_hundred_percent(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id, **{**SHARE_KPI, "target_value": "100.000"})
    assert (kpi.unit, kpi.target_value) == ("%", "100")


def test_every_invalid_field_is_reported_at_once(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    response = create_kpi(suite.loans, borrower, loan.id, name="", unit="", target_value="x")
    assert failure(response) == (INVALID, "NAME_REQUIRED", ["name", "unit", "target_value"])


def test_only_the_loans_borrower_proposes_kpis(
    suite: Suite, lender: Account, loan: pb.Loan
) -> None:
    outsider = suite.register("BORROWER")

    # The party check comes before validation: an invalid request is still refused as such.
    assert failure(create_kpi(suite.loans, lender, loan.id, name="")) == (
        DENIED,
        "NOT_THE_BORROWER",
        [],
    )
    assert failure(create_kpi(suite.loans, outsider, loan.id)) == (NOT_FOUND, "LOAN_NOT_FOUND", [])
    assert failure(create_kpi(suite.loans, lender, str(uuid.uuid4())))[:2] == (
        NOT_FOUND,
        "LOAN_NOT_FOUND",
    )


def test_kpis_change_only_while_the_loan_is_draft_or_pending_approval(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower, lender)
    kpi = new_kpi(suite.loans, borrower, loan.id)
    set_state(suite, loan.id, "PENDING_APPROVAL")
    pending = new_kpi(suite.loans, borrower, loan.id)
    assert update_kpi(suite.loans, borrower, pending.id, name="Pending edit").HasField("kpi")

    for state in ("APPROVED", "ACTIVE", "CLOSED", "REJECTED", "WITHDRAWN"):
        set_state(suite, loan.id, state)
        assert failure(create_kpi(suite.loans, borrower, loan.id))[:2] == (
            PRECONDITION,
            "LOAN_NOT_EDITABLE",
        )
        assert (
            failure(update_kpi(suite.loans, borrower, kpi.id, name="Late"))[1]
            == "LOAN_NOT_EDITABLE"
        )
        deleted = suite.loans.DeleteKpi(
            pb.DeleteKpiRequest(kpi_id=kpi.id), metadata=borrower.metadata
        )
        assert failure(deleted)[1] == "LOAN_NOT_EDITABLE"
        assert failure(reject_kpi(suite.loans, lender, kpi.id, "no"))[1] == "LOAN_NOT_EDITABLE"
    # Validation comes before the state: the client learns what to fix first.
    assert failure(create_kpi(suite.loans, borrower, loan.id, name=""))[:2] == (
        INVALID,
        "NAME_REQUIRED",
    )
    assert actions(suite, kpi.id) == ["KPI_CREATED"]


def test_deleting_a_kpi_deletes_its_ratchet(suite: Suite, borrower: Account, loan: pb.Loan) -> None:
    kpi = new_kpi(suite.loans, borrower, loan.id)
    ratchet = new_ratchet(suite.loans, borrower, loan.id, kpi.id)

    response = suite.loans.DeleteKpi(pb.DeleteKpiRequest(kpi_id=kpi.id), metadata=borrower.metadata)

    assert response.deletion.kpi_id == kpi.id
    assert response.deletion.delete_time.seconds > 0
    assert count(suite, "kpis", id=kpi.id) == 0
    assert count(suite, "margin_ratchets", id=ratchet.id) == 0
    assert actions(suite, kpi.id) == ["KPI_CREATED", "KPI_DELETED"]
    again = suite.loans.DeleteKpi(pb.DeleteKpiRequest(kpi_id=kpi.id), metadata=borrower.metadata)
    assert failure(again) == (NOT_FOUND, "KPI_NOT_FOUND", [])
    no_id = suite.loans.DeleteKpi(pb.DeleteKpiRequest(), metadata=borrower.metadata)
    assert failure(no_id) == (INVALID, "KPI_ID_REQUIRED", ["kpi_id"])


def test_both_parties_list_the_kpis_in_creation_order(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower, lender)
    created = [new_kpi(suite.loans, borrower, loan.id, name=f"KPI {i}").id for i in range(3)]

    for account in (borrower, lender):
        listed = suite.loans.ListKpis(
            pb.ListKpisRequest(loan_id=loan.id), metadata=account.metadata
        )
        assert [kpi.id for kpi in listed.kpis.kpis] == created
    outsider = suite.register("LENDER")
    hidden = suite.loans.ListKpis(pb.ListKpisRequest(loan_id=loan.id), metadata=outsider.metadata)
    assert failure(hidden) == (NOT_FOUND, "LOAN_NOT_FOUND", [])


def test_a_replayed_create_returns_the_original_and_writes_once(
    suite: Suite, borrower: Account, loan: pb.Loan
) -> None:
    request_id = f"create-kpi-{uuid.uuid4().hex}"

    first = create_kpi(suite.loans, borrower, loan.id, request_id=request_id)
    second = create_kpi(suite.loans, borrower, loan.id, request_id=request_id)

    assert first.kpi.id
    assert second == first
    assert count(suite, "kpis", id=first.kpi.id) == 1
    assert actions(suite, first.kpi.id) == ["KPI_CREATED"]
    reused = create_kpi(suite.loans, borrower, loan.id, request_id=request_id, name="Other")
    assert failure(reused) == (INVALID, "REQUEST_ID_REUSED", ["request_id"])
