"""loansuite_client against the suite as processes: the walk-through, errors, retries, watching."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite_client import (
    AsyncLoansuite,
    Loansuite,
    RetryPolicy,
    Subscribed,
    async_watch_loans,
    watch_loans,
)
from loansuite_client.errors import InvalidArgumentError, NotFoundError, UnauthenticatedError

from tests.e2e.support import Processes
from tests.support import PASSWORD

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def connect(processes: Processes, retry: RetryPolicy | None = None) -> Loansuite:
    ports = processes.ports
    return Loansuite(
        auth=f"127.0.0.1:{ports['auth']}",
        loans=f"127.0.0.1:{ports['loans']}",
        audit=f"127.0.0.1:{ports['audit']}",
        retry=retry,
    )


def sign_up(suite: Loansuite, role: auth_pb.UserRole.ValueType) -> str:
    """Register a user of role with an organization of their own, log them in; their email."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    suite.auth.register(
        auth_pb.RegisterRequest(
            email=email,
            password=PASSWORD,
            name="Client Test",
            role=role,
            organization_name=f"Org {uuid.uuid4().hex[:6]}",
        )
    )
    suite.session.login(email, PASSWORD)
    return email


def eventually(check: Callable[[], T], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def a_year_ago_first_of_month() -> datetime.date:
    today = datetime.date.today()
    month = today.month - 13
    return datetime.date(today.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def loan_request(start: datetime.date, **fields: str) -> pb.CreateLoanRequest:
    return pb.CreateLoanRequest(
        name=fields.get("name", "Solar Park Term Loan"),
        loan_type=pb.LOAN_TYPE_FIXED_RATE,
        currency_code="EUR",
        principal_amount="1250000.00",
        committed_amount="1000000.00",
        drawn_amount="0.00",
        start_date=start.isoformat(),
        maturity_date=fields.get("maturity_date", "2035-01-01"),
        request_id=fields.get("request_id", ""),
    )


@pytest.fixture
def pair(processes: Processes) -> Iterator[tuple[Loansuite, Loansuite, str]]:
    """A signed-in borrower and lender, each with a client of their own; the lender's email."""
    with connect(processes) as borrower, connect(processes) as lender:
        sign_up(borrower, auth_pb.USER_ROLE_BORROWER)
        lender_email = sign_up(lender, auth_pb.USER_ROLE_LENDER)
        yield borrower, lender, lender_email


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_walk_through_to_a_verified_result_and_its_audit_trail(
    pair: tuple[Loansuite, Loansuite, str],
) -> None:
    ada, lena, lena_email = pair
    start = a_year_ago_first_of_month()
    period_end = start.replace(year=start.year + 1) - datetime.timedelta(days=1)
    loan = ada.loans.create_loan(loan_request(start))
    assert loan.state == pb.LOAN_STATE_DRAFT
    ada.loans.invite_lender(pb.InviteLenderRequest(loan_id=loan.id, lender_email=lena_email))
    kpi = ada.loans.create_kpi(
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
            effective_to="2034-12-31",
        )
    )
    ada.loans.create_margin_ratchet(
        pb.CreateMarginRatchetRequest(
            loan_id=loan.id, kpi_id=kpi.id, step_up_bps=10, step_down_bps=5, cap_bps=25
        )
    )
    lena.loans.accept_kpi(pb.AcceptKpiRequest(kpi_id=kpi.id))
    ada.loans.submit_loan(pb.SubmitLoanRequest(loan_id=loan.id))
    lena.loans.approve_loan(pb.ApproveLoanRequest(loan_id=loan.id))
    active = lena.loans.activate_loan(pb.ActivateLoanRequest(loan_id=loan.id))
    assert active.state == pb.LOAN_STATE_ACTIVE
    result = ada.loans.report_kpi_result(
        pb.ReportKpiResultRequest(
            kpi_id=kpi.id,
            period_start=start.isoformat(),
            period_end=period_end.isoformat(),
            value="8750.5",
        )
    )
    lena.loans.verify_kpi_result(pb.VerifyKpiResultRequest(kpi_result_id=result.id))
    page = ada.loans.list_margin_adjustments(pb.ListMarginAdjustmentsRequest(loan_id=loan.id))
    assert [(a.requested_bps, a.applied_bps, a.cumulative_bps) for a in page.adjustments] == [
        (-5, -5, -5)
    ]

    def audited() -> list[str]:
        events = ada.audit.list_audit_events(
            audit_pb.ListAuditEventsRequest(filter=audit_pb.AuditEventFilter(resource_id=loan.id))
        ).events
        actions = [e.action for e in events]
        assert "LOAN_ACTIVATED" in actions, actions
        return actions

    assert eventually(audited)[0] == "LOAN_CREATED"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_errors_are_raised_as_their_classes(pair: tuple[Loansuite, Loansuite, str]) -> None:
    ada, _, _ = pair
    start = a_year_ago_first_of_month()
    with pytest.raises(InvalidArgumentError) as caught:
        ada.loans.create_loan(loan_request(start, maturity_date="2001-01-01"))
    assert caught.value.reason == "MATURITY_NOT_AFTER_START"
    assert [v.field for v in caught.value.field_violations] == ["maturity_date"]
    assert caught.value.request_id
    assert caught.value.status is None
    with pytest.raises(NotFoundError):
        ada.loans.get_loan(pb.GetLoanRequest(loan_id=str(uuid.uuid4())))
    ada.session.logout()
    with pytest.raises(UnauthenticatedError):
        ada.loans.list_loans(pb.ListLoansRequest())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_mutation_retried_through_an_outage_is_written_once(processes: Processes) -> None:
    patient = RetryPolicy(max_attempts=60, initial_backoff=0.2, max_backoff=0.5)
    with connect(processes, patient) as ada:
        sign_up(ada, auth_pb.USER_ROLE_BORROWER)
        ada.loans.create_loan(loan_request(a_year_ago_first_of_month(), name="Before"))
        processes.stop("loans")
        restart = threading.Timer(1.0, processes.start, args=("loans",))
        restart.start()
        # No request_id of its own: the client makes one and sends it on every attempt.
        created = ada.loans.create_loan(loan_request(a_year_ago_first_of_month(), name="During"))
        restart.join()
        names = [loan.name for loan in ada.loans.list_loans(pb.ListLoansRequest()).loans]
    assert sorted(names) == ["Before", "During"]
    assert created.name == "During"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_watch_subscribes_again_after_the_server_restarts(
    processes: Processes, pair: tuple[Loansuite, Loansuite, str]
) -> None:
    ada, lena, lena_email = pair
    stop = threading.Event()
    seen: list[Subscribed | pb.LoanChange] = []
    subscribed = threading.Semaphore(0)

    def watch() -> None:
        for event in watch_loans(lena.loans, stop):
            seen.append(event)
            if isinstance(event, Subscribed):
                subscribed.release()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert subscribed.acquire(timeout=15)
    processes.stop("loans")
    processes.start("loans")
    assert subscribed.acquire(timeout=30), "the watch did not subscribe again"
    loan = ada.loans.create_loan(loan_request(a_year_ago_first_of_month()))
    ada.loans.invite_lender(pb.InviteLenderRequest(loan_id=loan.id, lender_email=lena_email))

    def delivered() -> None:
        assert any(isinstance(e, pb.LoanChange) and e.loan_id == loan.id for e in seen), seen

    eventually(delivered)
    stop.set()
    watcher.join(10)
    assert not watcher.is_alive()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_asyncio_client(processes: Processes) -> None:
    ports = processes.ports

    async def story() -> tuple[str, str, str]:
        async with AsyncLoansuite(
            auth=f"127.0.0.1:{ports['auth']}",
            loans=f"127.0.0.1:{ports['loans']}",
            audit=f"127.0.0.1:{ports['audit']}",
        ) as ada:
            email = f"async-{uuid.uuid4().hex[:8]}@example.com"
            await ada.auth.register(
                auth_pb.RegisterRequest(
                    email=email,
                    password=PASSWORD,
                    name="Async Ada",
                    role=auth_pb.USER_ROLE_BORROWER,
                    organization_name=f"Async Org {uuid.uuid4().hex[:6]}",
                )
            )
            await ada.session.login(email, PASSWORD)
            watch = async_watch_loans(ada.loans)
            assert isinstance(await anext(watch), Subscribed)
            loan = await ada.loans.create_loan(loan_request(a_year_ago_first_of_month()))
            change = await asyncio.wait_for(anext(watch), 15)
            await watch.aclose()
            assert isinstance(change, pb.LoanChange)
            me = await ada.auth.who_am_i(auth_pb.WhoAmIRequest())
            return change.loan_id, loan.id, me.email

    changed, created, email = asyncio.run(story())
    assert changed == created
    assert email.startswith("async-")
