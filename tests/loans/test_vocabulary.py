"""One spelling: every vocabulary enum matches its proto enum, and audit payloads use proto names.

The audit test drives one loan through every kind of event the loans service
writes, then reads every event from the outbox and checks each enum-valued
field of its changes against the proto enum it belongs to.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.descriptor import EnumDescriptor
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans import vocabulary
from services.loans.vocabulary import WireEnum
from tests.loans.database import outbox
from tests.loans.factories import period, update_kpi, update_loan, update_ratchet
from tests.loans.journey import Journey, call
from tests.support import Suite

ENUMS: list[tuple[type[WireEnum], EnumDescriptor]] = [
    (vocabulary.LoanType, pb.LoanType.DESCRIPTOR),
    (vocabulary.LoanState, pb.LoanState.DESCRIPTOR),
    (vocabulary.KpiType, pb.KpiType.DESCRIPTOR),
    (vocabulary.KpiDirection, pb.KpiDirection.DESCRIPTOR),
    (vocabulary.ObservationFrequency, pb.ObservationFrequency.DESCRIPTOR),
    (vocabulary.KpiStatus, pb.KpiStatus.DESCRIPTOR),
    (vocabulary.KpiResultStatus, pb.KpiResultStatus.DESCRIPTOR),
    (vocabulary.KpiOutcome, pb.KpiOutcome.DESCRIPTOR),
    (vocabulary.ChangeKind, pb.ChangeKind.DESCRIPTOR),
    (vocabulary.ReferenceRate, pb.ReferenceRate.DESCRIPTOR),
    (vocabulary.InterestPeriod, pb.InterestPeriod.DESCRIPTOR),
    (vocabulary.DrawdownStatus, pb.DrawdownStatus.DESCRIPTOR),
    (vocabulary.LedgerEntryType, pb.LedgerEntryType.DESCRIPTOR),
    (vocabulary.ReportingStatus, pb.ReportingStatus.DESCRIPTOR),
]


def test_every_vocabulary_enum_is_named_after_its_proto_enum() -> None:
    declared = {
        value
        for value in vars(vocabulary).values()
        if isinstance(value, type) and issubclass(value, WireEnum) and value is not WireEnum
    }
    assert declared == {kind for kind, _ in ENUMS}


@pytest.mark.parametrize(("kind", "descriptor"), ENUMS, ids=lambda x: getattr(x, "__name__", ""))
def test_a_vocabulary_enum_and_its_proto_enum_hold_the_same_values(
    kind: type[WireEnum], descriptor: EnumDescriptor
) -> None:
    proto_names = {v.name for v in descriptor.values} - {f"{kind.prefix()}UNSPECIFIED"}
    assert {member.wire for member in kind} == proto_names


# Which proto enum an enum-valued change field holds, by resource type.
ENUM_FIELDS: dict[tuple[str, str], EnumDescriptor] = {
    ("loan", "loan_type"): pb.LoanType.DESCRIPTOR,
    ("loan", "state"): pb.LoanState.DESCRIPTOR,
    ("loan", "reference_rate"): pb.ReferenceRate.DESCRIPTOR,
    ("loan", "interest_period"): pb.InterestPeriod.DESCRIPTOR,
    ("drawdown", "status"): pb.DrawdownStatus.DESCRIPTOR,
    ("ledger_entry", "entry_type"): pb.LedgerEntryType.DESCRIPTOR,
    ("kpi", "kpi_type"): pb.KpiType.DESCRIPTOR,
    ("kpi", "direction"): pb.KpiDirection.DESCRIPTOR,
    ("kpi", "observation_frequency"): pb.ObservationFrequency.DESCRIPTOR,
    ("kpi", "status"): pb.KpiStatus.DESCRIPTOR,
    ("kpi_result", "status"): pb.KpiResultStatus.DESCRIPTOR,
    ("kpi_result", "outcome"): pb.KpiOutcome.DESCRIPTOR,
}
EVERY_ACTION = {
    *("LOAN_CREATED", "LOAN_UPDATED", "LOAN_DELETED", "LENDER_INVITED"),
    *("LOAN_SUBMITTED", "LOAN_APPROVED", "LOAN_REJECTED", "LOAN_WITHDRAWN"),
    *("LOAN_ACTIVATED", "LOAN_CLOSED"),
    *("KPI_CREATED", "KPI_UPDATED", "KPI_DELETED", "KPI_ACCEPTED", "KPI_REJECTED"),
    *("MARGIN_RATCHET_CREATED", "MARGIN_RATCHET_UPDATED", "MARGIN_RATCHET_DELETED"),
    *("KPI_RESULT_REPORTED", "KPI_RESULT_VERIFIED", "KPI_RESULT_SUPERSEDED", "MARGIN_ADJUSTED"),
    *("DRAWDOWN_REQUESTED", "DRAWDOWN_APPROVED", "DRAWDOWN_REJECTED", "REPAYMENT_RECORDED"),
}


def every_kind_of_event(suite: Suite, journey: Journey) -> None:
    """One or more loans taken through every action the loans service audits."""
    loans, borrower, lender = suite.loans, journey.borrower, journey.lender

    def as_borrower(rpc: str, **fields: Any) -> Any:
        return call(loans, rpc, borrower, **fields)

    def as_lender(rpc: str, **fields: Any) -> Any:
        return call(loans, rpc, lender, **fields)

    at = journey.reported()  # created, invited, KPI and ratchet created, accepted, … reported
    assert at.result is not None
    restated = as_borrower(
        "ReportKpiResult", kpi_id=at.kpi.id, value="700", restates_result_id=at.result.id,
        **period(0),
    )  # fmt: skip
    as_lender("VerifyKpiResult", kpi_result_id=restated.id)
    funded = as_borrower("RequestDrawdown", loan_id=at.loan.id, amount="100.00")
    as_lender("ApproveDrawdown", drawdown_id=funded.id)
    refused = as_borrower("RequestDrawdown", loan_id=at.loan.id, amount="200.00")
    as_lender("RejectDrawdown", drawdown_id=refused.id, reason="No invoices")
    as_lender("RecordRepayment", loan_id=at.loan.id, amount="50.00")
    as_lender("CloseLoan", loan_id=at.loan.id)

    draft = journey.draft()
    assert draft.ratchet is not None
    assert update_loan(loans, borrower, draft.loan.id, name="B").HasField("loan")
    assert update_kpi(loans, borrower, draft.kpi.id, unit="t").HasField("kpi")
    as_lender("RejectKpi", kpi_id=draft.kpi.id, reason="Too lax")
    assert update_ratchet(loans, borrower, draft.ratchet.id, cap_bps=45).HasField("ratchet")
    as_borrower("DeleteMarginRatchet", ratchet_id=draft.ratchet.id)
    as_borrower("DeleteKpi", kpi_id=draft.kpi.id)
    as_borrower("DeleteLoan", loan_id=draft.loan.id)

    rejected, withdrawn = journey.to("PENDING_APPROVAL"), journey.draft()
    as_lender("RejectLoan", loan_id=rejected.loan.id, reason="Not this year")
    as_borrower("WithdrawLoan", loan_id=withdrawn.loan.id)


def test_audit_payloads_spell_every_enum_by_its_proto_name(suite: Suite, journey: Journey) -> None:
    every_kind_of_event(suite, journey)

    mine = [p for p in outbox(suite) if journey.borrower.organization_id in p["organization_ids"]]
    assert {p["action"] for p in mine} >= EVERY_ACTION
    checked = 0
    for event in mine:
        for field, old, new in event["changes"]:
            descriptor = ENUM_FIELDS.get((event["resource_type"], field))
            if descriptor is None:
                continue
            for value in (old, new):
                if value:  # "" is "no value"
                    assert json.loads(value) in descriptor.values_by_name, (event["action"], field)
                    checked += 1
    assert checked > 0
