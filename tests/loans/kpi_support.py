"""Helpers for the KPI, ratchet and result tests: loans in a given state, outbox reads."""

from __future__ import annotations

import json
from typing import Any, Protocol

from google.protobuf.field_mask_pb2 import FieldMask
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from tests.support import Account, Suite

LOAN = pb.CreateLoanRequest(
    name="Sustainability-Linked Term Loan",
    loan_type=pb.LOAN_TYPE_FIXED_RATE,
    currency_code="EUR",
    principal_amount="2500000.00",
    committed_amount="2500000.00",
    drawn_amount="0.00",
    start_date="2027-01-01",
    maturity_date="2032-01-01",
)

KPI: dict[str, Any] = {
    "name": "Scope 1 and 2 emissions",
    "kpi_type": pb.KPI_TYPE_GHG_EMISSIONS,
    "unit": "tCO2e",
    "direction": pb.KPI_DIRECTION_LOWER_IS_BETTER,
    "baseline_value": "12000.500",
    "target_value": "9000",
    "threshold_value": "",
    "observation_frequency": pb.OBSERVATION_FREQUENCY_ANNUAL,
    "effective_from": "2027-01-01",
    "effective_to": "2031-12-31",
}

PASSED, FAILED = pb.KPI_OUTCOME_PASSED, pb.KPI_OUTCOME_FAILED
# Values of the default KPI (emissions, lower is better, target 9000).
MISS, MEET = "9100", "8900.5"

SHARE_KPI: dict[str, Any] = {
    **KPI,
    "name": "Renewable electricity share",
    "kpi_type": pb.KPI_TYPE_RENEWABLE_ENERGY_SHARE,
    "unit": "%",
    "direction": pb.KPI_DIRECTION_HIGHER_IS_BETTER,
    "baseline_value": "35",
    "target_value": "60.25",
}


class Envelope(Protocol):
    def WhichOneof(self, oneof_group: Any, /) -> str | None: ...

    @property
    def error(self) -> error_pb2.Error: ...


def failure(response: Envelope) -> tuple[int, str, list[str]]:
    """The error's code, reason and violated fields; the response must be an error."""
    assert response.WhichOneof("result") == "error", response
    error = response.error
    return error.code, error.reason, [v.field for v in error.field_violations]


def engine(suite: Suite) -> Engine:
    # NullPool: every helper call opens and closes its own connection, nothing lingers.
    return create_engine(suite.settings.database_url("loans"), poolclass=NullPool)


def set_loan(suite: Suite, loan_id: str, *, state: str, lender: Account | None = None) -> None:
    """Put a loan in a state (and give it a lender) directly in the loans database."""
    with engine(suite).begin() as conn:
        conn.execute(
            text("UPDATE loans SET state = :state WHERE id = :id"), {"state": state, "id": loan_id}
        )
        if lender is not None:
            conn.execute(
                text("UPDATE loans SET lender_organization_id = :org WHERE id = :id"),
                {"org": lender.organization_id, "id": loan_id},
            )


def count(suite: Suite, table: str, **where: str) -> int:
    condition = " AND ".join(f"{column} = :{column}" for column in where) or "1 = 1"
    with engine(suite).connect() as conn:
        query = text(f"SELECT count(*) FROM {table} WHERE {condition}")  # noqa: S608 - test names
        return int(conn.execute(query, where).scalar_one())


def events(suite: Suite, resource_id: str) -> list[dict[str, Any]]:
    """The outbox events of one resource, oldest first, as their JSON payloads."""
    with engine(suite).connect() as conn:
        rows = conn.execute(text("SELECT payload FROM outbox_events ORDER BY id")).scalars()
        payloads = [json.loads(row) for row in rows]
    return [p for p in payloads if p["resource_id"] == resource_id]


def actions(suite: Suite, resource_id: str) -> list[str]:
    return [event["action"] for event in events(suite, resource_id)]


def new_loan(suite: Suite, borrower: Account, lender: Account | None = None) -> pb.Loan:
    """A DRAFT loan of the borrower, with the lender's organization as its lender if given."""
    response = suite.loans.CreateLoan(LOAN, metadata=borrower.metadata)
    assert response.HasField("loan"), response.error
    if lender is not None:
        set_loan(suite, response.loan.id, state="DRAFT", lender=lender)
    return response.loan


def create_kpi(
    suite: Suite, borrower: Account, loan_id: str, **fields: Any
) -> pb.CreateKpiResponse:
    request = pb.CreateKpiRequest(loan_id=loan_id, **{**KPI, **fields})
    return suite.loans.CreateKpi(request, metadata=borrower.metadata)


def new_kpi(suite: Suite, borrower: Account, loan_id: str, **fields: Any) -> pb.Kpi:
    response = create_kpi(suite, borrower, loan_id, **fields)
    assert response.HasField("kpi"), response.error
    return response.kpi


def accept(suite: Suite, lender: Account, kpi_id: str) -> pb.Kpi:
    response = suite.loans.AcceptKpi(pb.AcceptKpiRequest(kpi_id=kpi_id), metadata=lender.metadata)
    assert response.HasField("kpi"), response.error
    return response.kpi


def new_ratchet(
    suite: Suite, borrower: Account, loan_id: str, kpi_id: str, up: int, down: int, cap: int
) -> pb.MarginRatchet:
    request = pb.CreateMarginRatchetRequest(
        loan_id=loan_id, kpi_id=kpi_id, step_up_bps=up, step_down_bps=down, cap_bps=cap
    )
    response = suite.loans.CreateMarginRatchet(request, metadata=borrower.metadata)
    assert response.HasField("ratchet"), response.error
    return response.ratchet


def loan_etag(suite: Suite, account: Account, loan_id: str) -> str:
    response = suite.loans.GetLoan(pb.GetLoanRequest(loan_id=loan_id), metadata=account.metadata)
    assert response.HasField("loan"), response.error
    return response.loan.etag


def update_kpi(
    suite: Suite,
    account: Account,
    kpi_id: str,
    *,
    paths: list[str] | None = None,
    etag: str = "",
    **fields: Any,
) -> pb.UpdateKpiResponse:
    """UpdateKpi of the given fields; the mask names them unless paths says otherwise."""
    mask = FieldMask(paths=list(fields) if paths is None else paths)
    request = pb.UpdateKpiRequest(kpi_id=kpi_id, etag=etag, update_mask=mask, **fields)
    return suite.loans.UpdateKpi(request, metadata=account.metadata)


def reject_kpi(suite: Suite, account: Account, kpi_id: str, reason: str) -> pb.RejectKpiResponse:
    request = pb.RejectKpiRequest(kpi_id=kpi_id, reason=reason)
    return suite.loans.RejectKpi(request, metadata=account.metadata)


def active(
    suite: Suite,
    borrower: Account,
    lender: Account,
    ratchet: tuple[int, int, int] | None = (20, 10, 30),
    **kpi_fields: Any,
) -> tuple[pb.Loan, pb.Kpi]:
    """An ACTIVE loan with one accepted KPI and, unless None, its ratchet (up, down, cap)."""
    loan = new_loan(suite, borrower, lender)
    kpi = new_kpi(suite, borrower, loan.id, **kpi_fields)
    if ratchet is not None:
        new_ratchet(suite, borrower, loan.id, kpi.id, *ratchet)
    accept(suite, lender, kpi.id)
    set_loan(suite, loan.id, state="ACTIVE")
    return loan, kpi


def quarter(n: int) -> dict[str, str]:
    """The n-th quarter from 2027 on, as an inclusive period."""
    year, index = 2027 + n // 4, n % 4
    ends = ["03-31", "06-30", "09-30", "12-31"]
    return {"period_start": f"{year}-{3 * index + 1:02d}-01", "period_end": f"{year}-{ends[index]}"}


def report(
    suite: Suite, account: Account, kpi_id: str, value: str = MISS, n: int = 0, **fields: Any
) -> pb.ReportKpiResultResponse:
    request = pb.ReportKpiResultRequest(kpi_id=kpi_id, value=value, **{**quarter(n), **fields})
    return suite.loans.ReportKpiResult(request, metadata=account.metadata)


def reported(suite: Suite, account: Account, kpi_id: str, value: str = MISS, n: int = 0) -> str:
    response = report(suite, account, kpi_id, value, n)
    assert response.HasField("kpi_result"), response.error
    return response.kpi_result.id


def verify(
    suite: Suite, account: Account, result_id: str, **fields: Any
) -> pb.VerifyKpiResultResponse:
    request = pb.VerifyKpiResultRequest(kpi_result_id=result_id, **fields)
    return suite.loans.VerifyKpiResult(request, metadata=account.metadata)


def verified(suite: Suite, lender: Account, result_id: str) -> pb.KpiVerification:
    response = verify(suite, lender, result_id)
    assert response.HasField("verification"), response.error
    return response.verification


def listed(suite: Suite, account: Account, loan_id: str, kpi_id: str = "") -> list[pb.KpiResult]:
    request = pb.ListKpiResultsRequest(loan_id=loan_id, kpi_id=kpi_id)
    response = suite.loans.ListKpiResults(request, metadata=account.metadata)
    assert response.HasField("kpi_results"), response.error
    return list(response.kpi_results.kpi_results)
