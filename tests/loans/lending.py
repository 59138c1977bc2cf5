"""Helpers of the loan-domain tests: loans through real RPCs, rows through the real database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from services.loans.models import Kpi, MarginRatchet
from tests.support import Account, Suite

TERMS: dict[str, Any] = {
    "name": "Green Term Loan",
    "loan_type": pb.LOAN_TYPE_FIXED_RATE,
    "currency_code": "EUR",
    "principal_amount": "1000000.00",
    "committed_amount": "800000.00",
    "drawn_amount": "100000.00",
    "start_date": "2027-01-01",
    "maturity_date": "2032-01-01",
}


def tagged(account: Account, request_id: str) -> tuple[tuple[str, str], ...]:
    """The account's metadata with an x-request-id, which the audit events carry."""
    return (*account.metadata, ("x-request-id", request_id))


def new_id() -> str:
    return f"t-{uuid.uuid4().hex}"


def new_loan(suite: Suite, borrower: Account, **overrides: Any) -> pb.Loan:
    response = suite.loans.CreateLoan(
        pb.CreateLoanRequest(**{**TERMS, **overrides}), metadata=borrower.metadata
    )
    assert response.HasField("loan"), response.error
    return response.loan


def get_loan(suite: Suite, account: Account, loan_id: str) -> pb.GetLoanResponse:
    return suite.loans.GetLoan(pb.GetLoanRequest(loan_id=loan_id), metadata=account.metadata)


def invite(suite: Suite, borrower: Account, loan_id: str, lender: Account) -> pb.Loan:
    request = pb.InviteLenderRequest(loan_id=loan_id, lender_email=lender.email)
    response = suite.loans.InviteLender(request, metadata=borrower.metadata)
    assert response.HasField("loan"), response.error
    return response.loan


def insert_kpi(suite: Suite, loan_id: str, *, status: str = "ACCEPTED") -> str:
    """A KPI row written straight into the loans database (no KPI RPC is needed here)."""
    now = datetime.now(UTC)
    kpi = Kpi(
        id=str(uuid.uuid4()),
        loan_id=loan_id,
        name="Scope 1 emissions",
        kpi_type="GHG_EMISSIONS",
        unit="tCO2e",
        direction="LOWER_IS_BETTER",
        baseline_value=Decimal("1200.5"),
        target_value=Decimal("900"),
        observation_frequency="ANNUAL",
        effective_from=date(2027, 1, 1),
        effective_to=date(2031, 12, 31),
        status=status,
        rejection_reason="",
        version=1,
        create_time=now,
        update_time=now,
    )
    _add(suite, kpi)
    return kpi.id


def insert_ratchet(suite: Suite, loan_id: str, kpi_id: str) -> None:
    now = datetime.now(UTC)
    ratchet = MarginRatchet(
        id=str(uuid.uuid4()),
        loan_id=loan_id,
        kpi_id=kpi_id,
        step_up_bps=5,
        step_down_bps=5,
        cap_bps=25,
        version=1,
        create_time=now,
        update_time=now,
    )
    _add(suite, ratchet)


def _add(suite: Suite, row: object) -> None:
    engine = create_engine(suite.settings.database_url("loans"))
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
    finally:
        engine.dispose()


def sql(suite: Suite, statement: str, **params: object) -> list[tuple[Any, ...]]:
    """Run a statement on the loans database through an engine of our own."""
    engine = create_engine(suite.settings.database_url("loans"))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def audit_events(suite: Suite, request_id: str) -> list[dict[str, Any]]:
    """The outbox events one call wrote, found by the request id they carry."""
    rows = sql(
        suite,
        "SELECT payload FROM outbox_events WHERE payload LIKE :pattern ORDER BY id",
        pattern=f"%{request_id}%",
    )
    events = [json.loads(payload) for (payload,) in rows]
    return [event for event in events if event["request_id"] == request_id]


def assert_error(
    response: Any, code: error_pb2.ErrorCode.ValueType, reason: str, field: str | None = None
) -> None:
    assert response.WhichOneof("result") == "error", response
    assert (response.error.code, response.error.reason) == (code, reason), response.error
    fields = [violation.field for violation in response.error.field_violations]
    assert fields == ([field] if field else []), response.error
