"""`loansuite demo`: a scripted story against running services, each step with its answer.

A borrower and a lender register; the borrower creates a loan, invites the
lender and proposes a KPI with a margin ratchet; the lender accepts, the loan
is submitted, approved and activated; the borrower reports a result that meets
the target, the lender verifies it, the margin steps down; then the audit
trail of the loan. Dates follow today's, so the story holds whenever it runs:
the loan started thirteen months ago and its first annual period has ended.
Each run registers new users, so it can run again against the same suite.
"""

from __future__ import annotations

import datetime
import functools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite_client import Loansuite

__all__ = ["Targets", "run_demo"]

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Targets:
    """host:port of each service."""

    auth: str
    loans: str
    audit: str


class _Story:
    """Numbered steps, printed with their answers."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._number = 0

    def step(self, title: str, answer: Callable[[], M]) -> M:
        self._number += 1
        print(f"\n{self._number}. {title}", file=self._out)
        message = answer()
        print(json_format.MessageToJson(message, indent=2), file=self._out, flush=True)
        return message


def _first_of_month(months_ago: int) -> datetime.date:
    today = datetime.date.today()
    month = today.year * 12 + today.month - 1 - months_ago
    return datetime.date(month // 12, month % 12 + 1, 1)


def run_demo(targets: Targets, out: TextIO) -> str:
    """Tell the story against the services at targets; the loan's id."""
    suffix = secrets.token_hex(3)
    password = f"demo {secrets.token_urlsafe(12)}"
    story = _Story(out)
    with _connect(targets) as ada, _connect(targets) as lena:
        for suite, who, role, org in [
            (ada, "ada", auth_pb.USER_ROLE_BORROWER, "Ada Renewables"),
            (lena, "lena", auth_pb.USER_ROLE_LENDER, "Green Bank"),
        ]:
            email = f"{who}-{suffix}@example.com"
            story.step(
                f"Register {email} with a new organization, {org} {suffix}",
                functools.partial(
                    suite.auth.register,
                    auth_pb.RegisterRequest(
                        email=email,
                        password=password,
                        name=who.title(),
                        role=role,
                        organization_name=f"{org} {suffix}",
                    ),
                ),
            )
            suite.session.login(email, password)
        return _loan_story(story, ada, lena, f"lena-{suffix}@example.com")


def _connect(targets: Targets) -> Loansuite:
    return Loansuite(auth=targets.auth, loans=targets.loans, audit=targets.audit)


def _loan_story(story: _Story, ada: Loansuite, lena: Loansuite, lena_email: str) -> str:
    start = _first_of_month(13)
    period_end = start.replace(year=start.year + 1) - datetime.timedelta(days=1)
    loan = story.step(
        "Ada creates a loan (a DRAFT, amounts as decimal strings)",
        lambda: ada.loans.create_loan(
            pb.CreateLoanRequest(
                name="Solar Park Term Loan",
                loan_type=pb.LOAN_TYPE_FIXED_RATE,
                currency_code="EUR",
                principal_amount="1250000.00",
                committed_amount="1000000.00",
                drawn_amount="0.00",
                start_date=start.isoformat(),
                maturity_date=(start.replace(year=start.year + 6)).isoformat(),
            )
        ),
    )
    story.step(
        "Ada invites Lena's bank as the lender",
        lambda: ada.loans.invite_lender(
            pb.InviteLenderRequest(loan_id=loan.id, lender_email=lena_email)
        ),
    )
    kpi = story.step(
        "Ada proposes a KPI: emissions below 9,000 tCO2e a year",
        lambda: ada.loans.create_kpi(
            pb.CreateKpiRequest(
                loan_id=loan.id,
                name="Scope 1 and 2 emissions",
                kpi_type=pb.KPI_TYPE_GHG_EMISSIONS,
                unit="tCO2e",
                direction=pb.KPI_DIRECTION_LOWER_IS_BETTER,
                baseline_value="12000",
                target_value="9000",
                observation_frequency=pb.OBSERVATION_FREQUENCY_ANNUAL,
                effective_from=start.isoformat(),
                effective_to=(start.replace(year=start.year + 5)).isoformat(),
            )
        ),
    )
    story.step(
        "Ada attaches a ratchet: 5 bps off when met, 10 bps on when missed, 25 at most",
        lambda: ada.loans.create_margin_ratchet(
            pb.CreateMarginRatchetRequest(
                loan_id=loan.id, kpi_id=kpi.id, step_up_bps=10, step_down_bps=5, cap_bps=25
            )
        ),
    )
    story.step(
        "Lena accepts the KPI", lambda: lena.loans.accept_kpi(pb.AcceptKpiRequest(kpi_id=kpi.id))
    )
    story.step(
        "Ada submits the loan", lambda: ada.loans.submit_loan(pb.SubmitLoanRequest(loan_id=loan.id))
    )
    story.step(
        "Lena approves it", lambda: lena.loans.approve_loan(pb.ApproveLoanRequest(loan_id=loan.id))
    )
    story.step(
        "Lena activates it",
        lambda: lena.loans.activate_loan(pb.ActivateLoanRequest(loan_id=loan.id)),
    )
    result = story.step(
        f"Ada reports the period {start} to {period_end}: 8,750.5 tCO2e",
        lambda: ada.loans.report_kpi_result(
            pb.ReportKpiResultRequest(
                kpi_id=kpi.id,
                period_start=start.isoformat(),
                period_end=period_end.isoformat(),
                value="8750.5",
                note="Audited by an independent verifier",
            )
        ),
    )
    story.step(
        "Lena verifies it: the target is met, the margin steps down",
        lambda: lena.loans.verify_kpi_result(pb.VerifyKpiResultRequest(kpi_result_id=result.id)),
    )
    story.step(
        "The loan's margin adjustments",
        lambda: ada.loans.list_margin_adjustments(pb.ListMarginAdjustmentsRequest(loan_id=loan.id)),
    )
    story.step("The loan's audit trail", lambda: _audit_trail(ada, loan.id))
    return loan.id


def _audit_trail(suite: Loansuite, loan_id: str) -> audit_pb.AuditEventPage:
    """The loan's events, once the last change has reached the audit log (a moment after commit)."""
    request = audit_pb.ListAuditEventsRequest(filter=audit_pb.AuditEventFilter(resource_id=loan_id))
    deadline = time.monotonic() + 10
    while True:
        page = suite.audit.list_audit_events(request)
        if any(e.action == "LOAN_ACTIVATED" for e in page.events) or time.monotonic() > deadline:
            return page
        time.sleep(0.2)
