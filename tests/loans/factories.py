"""Request templates; loans, KPIs, ratchets and results made through the real RPCs.

Each function takes the stub it calls, so the same one serves the suite's
server and a second replica. ``create_*``, ``update_*``, ``report`` and
``verify`` return the envelope, error or not; ``new_*``, ``reported`` and
``verified`` assert success and return what was made. ``listed`` and
``audit_log`` read back through the real RPCs too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1.audit_service_pb2_grpc import AuditServiceStub
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1.loan_service_pb2_grpc import LoanServiceStub

from tests.support import Account

# One template per request: a test names only the fields it is about.
LOAN: Mapping[str, Any] = {
    "name": "Green Term Loan 2027",
    "loan_type": pb.LOAN_TYPE_FIXED_RATE,
    "currency_code": "EUR",
    "principal_amount": "1250000.00",
    "committed_amount": "1000000.00",
    "drawn_amount": "250000.50",
    "start_date": "2027-01-01",
    "maturity_date": "2032-01-01",
}
KPI: Mapping[str, Any] = {
    "name": "Scope 1 and 2 emissions",
    "kpi_type": pb.KPI_TYPE_GHG_EMISSIONS,
    "unit": "tCO2e",
    "direction": pb.KPI_DIRECTION_LOWER_IS_BETTER,
    "baseline_value": "12000.500",
    "target_value": "9000",
    "threshold_value": "",
    # Quarterly, so that period(n) names its observation periods.
    "observation_frequency": pb.OBSERVATION_FREQUENCY_QUARTERLY,
    "effective_from": "2027-01-01",
    "effective_to": "2031-12-31",
}
# The fields that make the template a share: the same rules, a percentage's unit and bounds.
SHARE_KPI: Mapping[str, Any] = {
    **KPI,
    "name": "Renewable electricity share",
    "kpi_type": pb.KPI_TYPE_RENEWABLE_ENERGY_SHARE,
    "unit": "%",
    "direction": pb.KPI_DIRECTION_HIGHER_IS_BETTER,
    "baseline_value": "35",
    "target_value": "60.25",
}
RATCHET: Mapping[str, int] = {"step_up_bps": 20, "step_down_bps": 10, "cap_bps": 30}

PASSED, FAILED = pb.KPI_OUTCOME_PASSED, pb.KPI_OUTCOME_FAILED
# Results of the KPI template (emissions, lower is better, target 9000).
MISS, MEET = "9100", "8900.5"


def _mask(fields: Mapping[str, Any], paths: list[str] | None) -> FieldMask:
    """An update mask naming the fields given, unless paths says otherwise."""
    return FieldMask(paths=list(fields) if paths is None else paths)


def loan_request(**fields: Any) -> pb.CreateLoanRequest:
    """CreateLoan of the template, with fields in place of its own."""
    return pb.CreateLoanRequest(**{**LOAN, **fields})


def create_loan(loans: LoanServiceStub, account: Account, **fields: Any) -> pb.CreateLoanResponse:
    """CreateLoan of the template, with fields in place of its own; the envelope."""
    return loans.CreateLoan(loan_request(**fields), metadata=account.metadata)


def new_loan(
    loans: LoanServiceStub, borrower: Account, lender: Account | None = None, **fields: Any
) -> pb.Loan:
    """A DRAFT loan of the borrower, with the lender invited if one is given."""
    response = create_loan(loans, borrower, **fields)
    assert response.HasField("loan"), response.error
    return response.loan if lender is None else invite(loans, borrower, response.loan.id, lender)


def invite(loans: LoanServiceStub, borrower: Account, loan_id: str, lender: Account) -> pb.Loan:
    """The loan after the borrower invited the lender to it."""
    request = pb.InviteLenderRequest(loan_id=loan_id, lender_email=lender.email)
    response = loans.InviteLender(request, metadata=borrower.metadata)
    assert response.HasField("loan"), response.error
    return response.loan


def get_loan(loans: LoanServiceStub, account: Account, loan_id: str) -> pb.GetLoanResponse:
    """GetLoan of one loan as account sees it; the envelope."""
    return loans.GetLoan(pb.GetLoanRequest(loan_id=loan_id), metadata=account.metadata)


def update_loan(
    loans: LoanServiceStub,
    account: Account,
    loan_id: str,
    *,
    etag: str = "",
    paths: list[str] | None = None,
    request_id: str = "",
    **fields: Any,
) -> pb.UpdateLoanResponse:
    """UpdateLoan of the given fields; the mask names them unless paths says otherwise."""
    mask = _mask(fields, paths)
    request = pb.UpdateLoanRequest(
        loan_id=loan_id, etag=etag, update_mask=mask, request_id=request_id, **fields
    )
    return loans.UpdateLoan(request, metadata=account.metadata)


def kpi_request(loan_id: str, **fields: Any) -> pb.CreateKpiRequest:
    """CreateKpi of the template on a loan, with fields in place of its own."""
    return pb.CreateKpiRequest(loan_id=loan_id, **{**KPI, **fields})


def create_kpi(
    loans: LoanServiceStub, account: Account, loan_id: str, **fields: Any
) -> pb.CreateKpiResponse:
    """CreateKpi of the template on a loan; the envelope."""
    return loans.CreateKpi(kpi_request(loan_id, **fields), metadata=account.metadata)


def new_kpi(loans: LoanServiceStub, borrower: Account, loan_id: str, **fields: Any) -> pb.Kpi:
    """A PROPOSED KPI of the template on a loan, with fields in place of its own."""
    response = create_kpi(loans, borrower, loan_id, **fields)
    assert response.HasField("kpi"), response.error
    return response.kpi


def update_kpi(
    loans: LoanServiceStub,
    account: Account,
    kpi_id: str,
    *,
    etag: str = "",
    paths: list[str] | None = None,
    **fields: Any,
) -> pb.UpdateKpiResponse:
    """UpdateKpi of the given fields; the mask names them unless paths says otherwise."""
    mask = _mask(fields, paths)
    request = pb.UpdateKpiRequest(kpi_id=kpi_id, etag=etag, update_mask=mask, **fields)
    return loans.UpdateKpi(request, metadata=account.metadata)


def accept_kpi(loans: LoanServiceStub, lender: Account, kpi_id: str) -> pb.Kpi:
    """The KPI after its lender accepted it."""
    response = loans.AcceptKpi(pb.AcceptKpiRequest(kpi_id=kpi_id), metadata=lender.metadata)
    assert response.HasField("kpi"), response.error
    return response.kpi


def reject_kpi(
    loans: LoanServiceStub, account: Account, kpi_id: str, reason: str
) -> pb.RejectKpiResponse:
    """RejectKpi with a reason; the envelope."""
    request = pb.RejectKpiRequest(kpi_id=kpi_id, reason=reason)
    return loans.RejectKpi(request, metadata=account.metadata)


def ratchet_request(loan_id: str, kpi_id: str, **fields: Any) -> pb.CreateMarginRatchetRequest:
    """CreateMarginRatchet of the template on a loan's KPI, with fields in place of its own."""
    return pb.CreateMarginRatchetRequest(loan_id=loan_id, kpi_id=kpi_id, **{**RATCHET, **fields})


def create_ratchet(
    loans: LoanServiceStub, account: Account, loan_id: str, kpi_id: str, **fields: Any
) -> pb.CreateMarginRatchetResponse:
    """CreateMarginRatchet of the template on a loan's KPI; the envelope."""
    request = ratchet_request(loan_id, kpi_id, **fields)
    return loans.CreateMarginRatchet(request, metadata=account.metadata)


def new_ratchet(
    loans: LoanServiceStub, borrower: Account, loan_id: str, kpi_id: str, **bps: int
) -> pb.MarginRatchet:
    """A ratchet of the template on a loan's KPI, with basis points in place of its own."""
    response = create_ratchet(loans, borrower, loan_id, kpi_id, **bps)
    assert response.HasField("ratchet"), response.error
    return response.ratchet


def update_ratchet(
    loans: LoanServiceStub,
    account: Account,
    ratchet_id: str,
    *,
    etag: str = "",
    paths: list[str] | None = None,
    **bps: Any,
) -> pb.UpdateMarginRatchetResponse:
    """UpdateMarginRatchet of the given fields; the mask names them unless paths says otherwise."""
    mask = _mask(bps, paths)
    request = pb.UpdateMarginRatchetRequest(
        ratchet_id=ratchet_id, etag=etag, update_mask=mask, **bps
    )
    return loans.UpdateMarginRatchet(request, metadata=account.metadata)


def period(n: int) -> dict[str, str]:
    """The n-th quarter from 2027 on: the template KPI's n-th observation period."""
    year, index = 2027 + n // 4, n % 4
    ends = ["03-31", "06-30", "09-30", "12-31"]
    return {"period_start": f"{year}-{3 * index + 1:02d}-01", "period_end": f"{year}-{ends[index]}"}


def report(
    loans: LoanServiceStub,
    account: Account,
    kpi_id: str,
    value: str = MISS,
    n: int = 0,
    **fields: Any,
) -> pb.ReportKpiResultResponse:
    """ReportKpiResult of value for the n-th period, with fields in place of the defaults."""
    request = pb.ReportKpiResultRequest(kpi_id=kpi_id, value=value, **{**period(n), **fields})
    return loans.ReportKpiResult(request, metadata=account.metadata)


def reported(
    loans: LoanServiceStub, account: Account, kpi_id: str, value: str = MISS, n: int = 0
) -> str:
    """The id of a result reported for the n-th period."""
    response = report(loans, account, kpi_id, value, n)
    assert response.HasField("kpi_result"), response.error
    return response.kpi_result.id


def verify(
    loans: LoanServiceStub, account: Account, result_id: str, **fields: Any
) -> pb.VerifyKpiResultResponse:
    """VerifyKpiResult of one result; the envelope."""
    request = pb.VerifyKpiResultRequest(kpi_result_id=result_id, **fields)
    return loans.VerifyKpiResult(request, metadata=account.metadata)


def verified(loans: LoanServiceStub, lender: Account, result_id: str) -> pb.KpiVerification:
    """The verification of a result by its lender: the result judged, and any adjustment."""
    response = verify(loans, lender, result_id)
    assert response.HasField("verification"), response.error
    return response.verification


def listed(
    loans: LoanServiceStub, account: Account, loan_id: str, kpi_id: str = ""
) -> list[pb.KpiResult]:
    """The results of a loan, or of one of its KPIs, as ListKpiResults gives them."""
    request = pb.ListKpiResultsRequest(loan_id=loan_id, kpi_id=kpi_id)
    response = loans.ListKpiResults(request, metadata=account.metadata)
    assert response.HasField("kpi_results"), response.error
    return list(response.kpi_results.kpi_results)


def audit_log(
    audit: AuditServiceStub, account: Account, since: datetime | None = None
) -> list[audit_pb.AuditEvent]:
    """Every audit event the account's organization may read (since a moment, if given)."""
    since_filter = None
    if since is not None:
        start = Timestamp()
        start.FromDatetime(since)
        since_filter = audit_pb.AuditEventFilter(occur_time_from=start)
    events: list[audit_pb.AuditEvent] = []
    token = ""
    while True:
        request = audit_pb.ListAuditEventsRequest(
            page_size=500,
            page_token=token,
            filter=since_filter,
        )
        response = audit.ListAuditEvents(request, metadata=account.metadata)
        assert response.HasField("page"), response.error
        events += response.page.events
        token = response.page.next_page_token
        if not token:
            return events
