"""KPI result use cases: the borrower reports, the lender verifies, the ratchet moves the margin.

Periods are inclusive dates: one of the KPI's observation periods (from its
frequency, inside its effective dates) that has ended by today's business date;
two non-superseded results of one KPI never overlap. A value worse than the
KPI's threshold_value is marked as a breach when reported. A restatement
replaces an earlier result, which stays on record as SUPERSEDED. Verifying a
result judges it against the KPI's target and, when the KPI has a ratchet,
records the margin adjustment that margins.py computes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.aggregate import (
    Event,
    LoanChange,
    Party,
    check_etag,
    created,
    diff,
    is_uuid,
    load_loan,
    load_part,
    save,
)
from services.loans.calendar.periods import MONTHS, period_of
from services.loans.kpis.use_cases import load_kpi
from services.loans.models import Kpi, KpiResult, Loan, MarginAdjustment
from services.loans.results.margins import adjust_margin
from services.loans.results.schemas import NewResult, parse_result
from services.loans.vocabulary import (
    ChangeKind,
    KpiDirection,
    KpiOutcome,
    KpiResultStatus,
    KpiStatus,
    LoanState,
    WireEnum,
)
from services.shared.errors import FailedPreconditionError, FieldViolation, ValidationError
from services.shared.identity import Caller
from services.shared.validation import format_value

__all__ = ["list_kpi_results", "report_kpi_result", "verify_kpi_result"]

_ACTIVE_ONLY: Final = frozenset({LoanState.ACTIVE})


def report_kpi_result(
    session: Session,
    *,
    caller: Caller,
    kpi_id: str,
    form: Mapping[str, str],
    restates_result_id: str,
    today: date,
) -> KpiResult:
    """Report an accepted KPI's value for a period of an ACTIVE loan; audit KPI_RESULT_REPORTED."""
    loan, kpi = load_kpi(session, caller=caller, kpi_id=kpi_id, party=Party.BORROWER)
    new_result = parse_result(form, kpi_type=kpi.kpi_type)
    _check_observation_period(kpi, new_result)
    restated = _restated(session, kpi, restates_result_id)
    _require_active(loan)
    if kpi.status is not KpiStatus.ACCEPTED:
        raise FailedPreconditionError(
            f"results are reported only for accepted KPIs; this one is {kpi.status}",
            reason="KPI_NOT_ACCEPTED",
        )
    _check_ended(new_result, today)
    _check_period(session, kpi, new_result, restated)
    now = datetime.now(UTC)
    result = _new_result(loan, kpi, new_result, caller, restated, now)
    session.add(result)
    events = [Event("KPI_RESULT_REPORTED", "kpi_result", result.id, created(_described(result)))]
    if restated is not None:
        events.append(_supersede(restated, result.id))
    _save(session, caller, loan, events, now)
    return result


def verify_kpi_result(
    session: Session, *, caller: Caller, kpi_result_id: str, etag: str
) -> tuple[KpiResult, MarginAdjustment | None]:
    """Verify a REPORTED result (lender); audit KPI_RESULT_VERIFIED and any MARGIN_ADJUSTED."""
    loan, result = _load_result(session, caller, kpi_result_id)
    check_etag(result.etag, etag, what="KPI result")
    _require_active(loan)
    if result.status is not KpiResultStatus.REPORTED:
        raise FailedPreconditionError(
            f"only a REPORTED result can be verified; this one is {result.status}",
            reason="RESULT_NOT_REPORTED",
        )
    passed = _passes(session.get_one(Kpi, result.kpi_id), result.value)
    now = datetime.now(UTC)
    before = {"status": result.status, "outcome": None}
    result.status = KpiResultStatus.VERIFIED
    result.outcome = KpiOutcome.PASSED if passed else KpiOutcome.FAILED
    result.verifier_user_id, result.verify_time = caller.user_id, now
    changes = diff(before, {"status": result.status, "outcome": result.outcome})
    events = [Event("KPI_RESULT_VERIFIED", "kpi_result", result.id, changes)]
    adjustment = adjust_margin(session, loan=loan, result=result, passed=passed, now=now)
    if adjustment is not None:
        events.append(_adjusted(adjustment))
    _save(session, caller, loan, events, now)
    return result, adjustment


def list_kpi_results(
    session: Session, *, caller: Caller, loan_id: str, kpi_id: str
) -> list[KpiResult]:
    """A loan's results, superseded ones included, in report order; optionally one KPI's."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)
    query = select(KpiResult).where(KpiResult.loan_id == loan.id)
    if kpi_id:
        found = is_uuid(kpi_id) and session.scalar(
            select(Kpi.id).where(Kpi.id == kpi_id, Kpi.loan_id == loan.id)
        )
        if not found:
            raise ValidationError([("kpi_id", "KPI_NOT_IN_LOAN", "must be a KPI of this loan")])
        query = query.where(KpiResult.kpi_id == kpi_id)
    return list(session.scalars(query.order_by(KpiResult.report_time, KpiResult.id)))


def _restated(session: Session, kpi: Kpi, result_id: str) -> KpiResult | None:
    if not result_id:
        return None
    restated = None
    if is_uuid(result_id):  # every id is one; PostgreSQL refuses a NUL in a query
        restated = session.scalar(
            select(KpiResult).where(KpiResult.id == result_id, KpiResult.kpi_id == kpi.id)
        )
    if restated is None:
        description = "must be a result of the same KPI"
        raise ValidationError([("restates_result_id", "RESULT_NOT_IN_KPI", description)])
    return restated


def _check_observation_period(kpi: Kpi, new_result: NewResult) -> None:
    """The period must be one of the KPI's observation periods, inside its effective dates."""
    start, end = new_result.period_start, new_result.period_end
    window = f"{kpi.effective_from.isoformat()} to {kpi.effective_to.isoformat()}"
    if start < kpi.effective_from or end > kpi.effective_to:
        field = "period_start" if start < kpi.effective_from else "period_end"
        description = f"must lie within the KPI's effective dates, {window}"
        raise ValidationError([(field, "PERIOD_OUTSIDE_EFFECTIVE_WINDOW", description)])
    period = period_of(kpi.observation_frequency, kpi.effective_from, kpi.effective_to, start)
    if period is None or period.end != end:
        months = MONTHS[kpi.observation_frequency]
        description = (
            f"must be one of the KPI's observation periods: {months} month(s) each,"
            f" counted from {kpi.effective_from.isoformat()}"
        )
        field = "period_start" if period is None else "period_end"
        raise ValidationError([(field, "PERIOD_NOT_AN_OBSERVATION_PERIOD", description)])


def _check_ended(new_result: NewResult, today: date) -> None:
    """A period is reported once it has ended: on or after its last day."""
    end = new_result.period_end
    if end > today:
        message = f"the period ends on {end.isoformat()}; its result is reported from then"
        raise FailedPreconditionError(
            message,
            reason="PERIOD_NOT_ENDED",
            field_violations=(FieldViolation("period_end", "must not be after today"),),
        )


def _check_period(
    session: Session, kpi: Kpi, new_result: NewResult, restated: KpiResult | None
) -> None:
    if restated is not None and restated.status == KpiResultStatus.SUPERSEDED:
        raise FailedPreconditionError(
            "that result was already restated; restate its replacement instead",
            reason="RESULT_ALREADY_SUPERSEDED",
        )
    overlapping = session.scalars(
        select(KpiResult.id).where(
            KpiResult.kpi_id == kpi.id,
            KpiResult.status != KpiResultStatus.SUPERSEDED,
            KpiResult.period_start <= new_result.period_end,
            KpiResult.period_end >= new_result.period_start,
        )
    ).all()
    others = sorted(set(overlapping) - {restated.id if restated else ""})
    if others:
        raise FailedPreconditionError(
            f"the period overlaps result {others[0]}; restate that result to replace it",
            reason="PERIOD_OVERLAPS",
        )


def _new_result(
    loan: Loan,
    kpi: Kpi,
    new_result: NewResult,
    caller: Caller,
    restated: KpiResult | None,
    now: datetime,
) -> KpiResult:
    return KpiResult(
        id=str(uuid.uuid4()),
        loan_id=loan.id,
        kpi_id=kpi.id,
        period_start=new_result.period_start,
        period_end=new_result.period_end,
        value=new_result.value,
        note=new_result.note,
        status=KpiResultStatus.REPORTED,
        restates_result_id=restated.id if restated else None,
        reporter_user_id=caller.user_id,
        report_time=now,
        breach=_breaches(kpi, new_result.value),
    )


def _supersede(old: KpiResult, new_id: str) -> Event:
    before = {"status": old.status, "superseded_by_result_id": None}
    old.status, old.superseded_by_result_id = KpiResultStatus.SUPERSEDED, new_id
    after = {"status": old.status, "superseded_by_result_id": new_id}
    return Event("KPI_RESULT_SUPERSEDED", "kpi_result", old.id, diff(before, after))


def _adjusted(adjustment: MarginAdjustment) -> Event:
    fields = ("requested_bps", "applied_bps", "cumulative_bps")
    changes = created({name: getattr(adjustment, name) for name in fields})
    return Event("MARGIN_ADJUSTED", "margin_adjustment", adjustment.id, changes)


def _require_active(loan: Loan) -> None:
    """Results are reported and verified only while the loan is ACTIVE."""
    loan.require_state(_ACTIVE_ONLY, reason="LOAN_NOT_ACTIVE")


def _breaches(kpi: Kpi, value: Decimal) -> bool:
    """Whether the value is worse than the KPI's threshold in its direction (none: never)."""
    if kpi.threshold_value is None:
        return False
    if kpi.direction is KpiDirection.LOWER_IS_BETTER:
        return value > kpi.threshold_value
    return value < kpi.threshold_value


def _passes(kpi: Kpi, value: Decimal) -> bool:
    """Whether the value meets the KPI's target in its direction (Decimal, never float)."""
    if kpi.direction is KpiDirection.LOWER_IS_BETTER:
        return value <= kpi.target_value
    return value >= kpi.target_value


def _load_result(session: Session, caller: Caller, result_id: str) -> tuple[Loan, KpiResult]:
    return load_part(
        session,
        KpiResult,
        result_id,
        caller=caller,
        party=Party.LENDER,
        field="kpi_result_id",
        what="KPI result",
    )


def _described(result: KpiResult) -> dict[str, str | bool | WireEnum]:
    return {
        "kpi_id": result.kpi_id,
        "period_start": result.period_start.isoformat(),
        "period_end": result.period_end.isoformat(),
        "value": format_value(result.value),
        "note": result.note,
        "status": result.status,
        "restates_result_id": result.restates_result_id or "",
        "breach": result.breach,
    }


def _save(session: Session, caller: Caller, loan: Loan, events: list[Event], now: datetime) -> None:
    save(session, LoanChange(caller, loan, ChangeKind.RESULT_CHANGED, events, now))
