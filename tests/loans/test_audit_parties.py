"""Who reads a loan's audit events: the organizations that were its parties when they happened.

Events are stamped with the loan's parties when written and stay as recorded: a
lender invited later reads the loan's events from its invitation on, and a
replaced lender keeps what it saw and reads nothing after its replacement.
"""

from __future__ import annotations

from loansuite.audit.v1 import audit_service_pb2 as audit_pb

from tests.loans.factories import audit_log, invite, new_kpi, new_loan
from tests.support import Account, Suite, eventually


def actions_about(suite: Suite, account: Account, loan_id: str, kpi_ids: set[str]) -> list[str]:
    events: list[audit_pb.AuditEvent] = audit_log(suite.audit, account)
    about = {loan_id, *kpi_ids}
    return [e.action for e in sorted(events, key=lambda e: e.sequence) if e.resource_id in about]


def test_a_lender_invited_later_reads_events_from_its_invitation_on(
    suite: Suite, borrower: Account
) -> None:
    first, second = suite.register("LENDER"), suite.register("LENDER")
    loan = new_loan(suite.loans, borrower)
    early = new_kpi(suite.loans, borrower, loan.id)
    invite(suite.loans, borrower, loan.id, first)
    invite(suite.loans, borrower, loan.id, second)  # replaces the first lender
    late = new_kpi(suite.loans, borrower, loan.id)
    kpis = {early.id, late.id}
    everything = ["LOAN_CREATED", "KPI_CREATED", "LENDER_INVITED", "LENDER_INVITED", "KPI_CREATED"]
    eventually(
        lambda: actions_about(suite, borrower, loan.id, kpis) == everything,
        "the borrower reads every event of its loan",
    )

    # Neither lender reads what happened before it was invited...
    assert actions_about(suite, second, loan.id, kpis) == ["LENDER_INVITED", "KPI_CREATED"]
    # ...and the replaced one reads its own invitation and its replacement, nothing after.
    assert actions_about(suite, first, loan.id, kpis) == ["LENDER_INVITED", "LENDER_INVITED"]
