"""Random sequences of lifecycle, KPI and result calls from both sides agree with a model.

Hypothesis drives one loan per example through the real suite: after every
step the service's loan state, KPI statuses, results and adjustments must be
the model's, every call must answer as the model says (the exact error code,
and the reason of a FAILED_PRECONDITION), and at the end every committed change
must have exactly one audit event (and nothing that failed any).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans import loan_model as m
from tests.loans.database import undelivered
from tests.loans.factories import KPI, LOAN, MEET, MISS, RATCHET, audit_log, period
from tests.support import Account, Suite, eventually

SETTINGS = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.too_slow],
)
WHO = st.sampled_from([m.BORROWER, m.LENDER])
# Where an example starts: the calls (rpc, caller) that bring a new loan there.
STARTS = {
    "draft": [],
    "ready": [("InviteLender", m.BORROWER), ("CreateKpi", m.BORROWER)],
    "active": [
        *(("InviteLender", m.BORROWER), ("CreateKpi", m.BORROWER)),
        *(("CreateMarginRatchet", m.BORROWER), ("AcceptKpi", m.LENDER)),
        *(("SubmitLoan", m.BORROWER), ("ApproveLoan", m.LENDER), ("ActivateLoan", m.LENDER)),
        ("ReportKpiResult", m.BORROWER),
    ],
}
STARTS["verified"] = [*STARTS["active"], ("VerifyKpiResult", m.LENDER)]


class LoanMachine(RuleBasedStateMachine):
    suite: ClassVar[Suite]
    parties: ClassVar[dict[str, Account]]

    def __init__(self) -> None:
        super().__init__()
        self.model = m.LoanModel()
        self.loan_id = ""
        self.started = datetime.now(UTC)
        self.events: Counter[str] = Counter()  # request id -> audit events it should write
        self.resources: set[str] = set()  # ids of everything this example created
        self.updates = 0

    def call(self, rpc: str, who: str, expect: m.Expect, **fields: Any) -> Any:
        """Run rpc as who; the answer must be what the model expects. Returns the payload."""
        request_id = f"sm-{uuid.uuid4().hex}"
        metadata = (*self.parties[who].metadata, ("x-request-id", request_id))
        response = getattr(self.suite.loans, rpc)(
            getattr(pb, f"{rpc}Request")(**fields), metadata=metadata
        )
        self.events[request_id] = expect.events if expect.ok else 0
        if response.HasField("error"):
            code = error_pb2.ErrorCode.Name(response.error.code).removeprefix("ERROR_CODE_")
            reason = response.error.reason if expect.reason else ""
            assert (code, reason) == (expect.code, expect.reason), (rpc, who, response.error)
            return None
        assert expect.ok, (rpc, who, f"succeeded; the model expected {expect}")
        return getattr(response, str(response.WhichOneof("result")))

    # Half the examples start ACTIVE: results are reached from nowhere else in a few steps.
    @initialize(start=st.sampled_from(["active", "draft", "verified", "ready"]))
    def create_loan(self, start: str) -> None:
        loan = self.call("CreateLoan", m.BORROWER, m.Expect(), **LOAN)
        self.loan_id = loan.id
        self.resources.add(loan.id)
        steps: dict[str, Callable[[str], None]] = {
            "InviteLender": self._invite_lender,
            "CreateKpi": self._create_kpi,
            "CreateMarginRatchet": lambda who: self._create_ratchet(who, self._first_kpi()),
            "AcceptKpi": lambda who: self._review("AcceptKpi", who, self._first_kpi()),
            "ReportKpiResult": lambda who: self._report(who, 0, MEET),
            "VerifyKpiResult": lambda who: self._verify(who, sorted(self.model.results)[0]),
        }
        for rpc, who in STARTS[start]:
            if rpc in steps:
                steps[rpc](who)
            else:
                self._transition(rpc, who)

    @rule(who=WHO)
    def invite_lender(self, who: str) -> None:
        self._invite_lender(who)

    def _invite_lender(self, who: str) -> None:
        expect = self.model.expect_invite(who)
        fields = {"loan_id": self.loan_id, "lender_email": self.parties[m.LENDER].email}
        if self.call("InviteLender", who, expect, **fields) is not None:
            self.model.apply_invite()

    @rule(rpc=st.sampled_from(sorted(m.TRANSITIONS)), who=WHO)
    def transition(self, rpc: str, who: str) -> None:
        self._transition(rpc, who)

    def _transition(self, rpc: str, who: str) -> None:
        fields = {"reason": "Targets too weak"} if rpc == "RejectLoan" else {}
        expect = self.model.expect_transition(rpc, who)
        if self.call(rpc, who, expect, loan_id=self.loan_id, **fields) is not None:
            self.model.apply_transition(rpc)

    @rule(who=WHO)
    def create_kpi(self, who: str) -> None:
        self._create_kpi(who)

    def _create_kpi(self, who: str) -> None:
        expect = self.model.expect_create_kpi(who)
        kpi = self.call("CreateKpi", who, expect, **KPI, loan_id=self.loan_id)
        if kpi is not None:
            self.model.apply_create_kpi(kpi.id)
            self.resources.add(kpi.id)

    @precondition(lambda self: self.model.kpis)
    @rule(who=WHO, data=st.data())
    def update_kpi(self, who: str, data: st.DataObject) -> None:
        kpi_id = data.draw(st.sampled_from(sorted(self.model.kpis)))
        self.updates += 1
        target = str(800 - self.updates)  # a new value each time, so there is a change
        mask = FieldMask(paths=["target_value"])
        fields = {"kpi_id": kpi_id, "update_mask": mask, "target_value": target}
        if self.call("UpdateKpi", who, self.model.expect_edit_kpi(who), **fields) is not None:
            self.model.apply_update_kpi(kpi_id)

    @precondition(lambda self: self.model.kpis)
    @rule(who=WHO, data=st.data())
    def delete_kpi(self, who: str, data: st.DataObject) -> None:
        kpi_id = data.draw(st.sampled_from(sorted(self.model.kpis)))
        if self.call("DeleteKpi", who, self.model.expect_edit_kpi(who), kpi_id=kpi_id) is not None:
            self.model.apply_delete_kpi(kpi_id)

    @precondition(lambda self: self.model.kpis)
    @rule(rpc=st.sampled_from(["AcceptKpi", "RejectKpi"]), who=WHO, data=st.data())
    def review_kpi(self, rpc: str, who: str, data: st.DataObject) -> None:
        self._review(rpc, who, data.draw(st.sampled_from(sorted(self.model.kpis))))

    @precondition(lambda self: self.model.kpis)
    @rule(who=WHO, data=st.data())
    def create_ratchet(self, who: str, data: st.DataObject) -> None:
        self._create_ratchet(who, data.draw(st.sampled_from(sorted(self.model.kpis))))

    @precondition(lambda self: any(k.ratchet_id for k in self.model.kpis.values()))
    @rule(who=WHO, data=st.data())
    def delete_ratchet(self, who: str, data: st.DataObject) -> None:
        kpi = data.draw(st.sampled_from([k for k in self.model.kpis.values() if k.ratchet_id]))
        kpi_id = next(i for i, k in self.model.kpis.items() if k is kpi)
        expect = self.model.expect_delete_ratchet(who, kpi_id)
        if self.call("DeleteMarginRatchet", who, expect, ratchet_id=kpi.ratchet_id) is not None:
            kpi.ratchet_id = ""
            self.model.apply_ratchet_change(kpi_id)

    @precondition(lambda self: self.model.kpis)
    @rule(who=WHO, n=st.integers(0, 4), value=st.sampled_from([MEET, MISS]))
    def report_result(self, who: str, n: int, value: str) -> None:
        self._report(who, n, value)

    def _report(self, who: str, n: int, value: str) -> None:
        """Report a result of the first KPI for the n-th period."""
        kpi_id = self._first_kpi()
        expect = self.model.expect_report(who, kpi_id, n)
        fields = {"kpi_id": kpi_id, "value": value, **period(n)}
        result = self.call("ReportKpiResult", who, expect, **fields)
        if result is not None:
            self.model.apply_report(kpi_id, result.id, n)
            self.resources.add(result.id)

    @precondition(lambda self: self.model.results)
    @rule(who=WHO, data=st.data())
    def verify_result(self, who: str, data: st.DataObject) -> None:
        self._verify(who, data.draw(st.sampled_from(sorted(self.model.results))))

    def _verify(self, who: str, result_id: str) -> None:
        expect = self.model.expect_verify(who, result_id)
        verification = self.call("VerifyKpiResult", who, expect, kpi_result_id=result_id)
        if verification is not None:
            self.model.apply_verify(result_id)
            self.resources.add(verification.adjustment.id)

    @rule(who=WHO, amount=st.sampled_from(["100000.00", "400000.00"]))
    def request_drawdown(self, who: str, amount: str) -> None:
        expect = self.model.expect_request_drawdown(who, Decimal(amount))
        fields = {"loan_id": self.loan_id, "amount": amount}
        drawdown = self.call("RequestDrawdown", who, expect, **fields)
        if drawdown is not None:
            self.model.apply_request_drawdown(drawdown.id, Decimal(amount))
            self.resources.add(drawdown.id)

    @precondition(lambda self: self.model.drawdowns)
    @rule(approve=st.booleans(), who=WHO, data=st.data())
    def decide_drawdown(self, approve: bool, who: str, data: st.DataObject) -> None:
        drawdown_id = data.draw(st.sampled_from(sorted(self.model.drawdowns)))
        expect = self.model.expect_decide_drawdown(who, drawdown_id, approve)
        rpc, fields = "ApproveDrawdown", {"drawdown_id": drawdown_id}
        if not approve:
            rpc, fields = "RejectDrawdown", {**fields, "reason": "No invoices"}
        if self.call(rpc, who, expect, **fields) is not None:
            self.model.apply_decide_drawdown(drawdown_id, approve)

    @rule(who=WHO, amount=st.sampled_from(["50000.00", "300000.00"]))
    def record_repayment(self, who: str, amount: str) -> None:
        expect = self.model.expect_repayment(who, Decimal(amount))
        entry = self.call("RecordRepayment", who, expect, loan_id=self.loan_id, amount=amount)
        if entry is not None:
            self.model.apply_repayment(Decimal(amount))
            self.resources.add(entry.id)

    def _first_kpi(self) -> str:
        return sorted(self.model.kpis)[0]

    def _review(self, rpc: str, who: str, kpi_id: str) -> None:
        fields = {"reason": "Baseline unaudited"} if rpc == "RejectKpi" else {}
        expect = self.model.expect_review(who, kpi_id)
        if self.call(rpc, who, expect, kpi_id=kpi_id, **fields) is not None:
            self.model.apply_review(kpi_id, m.ACCEPTED if rpc == "AcceptKpi" else "REJECTED")

    def _create_ratchet(self, who: str, kpi_id: str) -> None:
        expect = self.model.expect_create_ratchet(who, kpi_id)
        fields = {"loan_id": self.loan_id, "kpi_id": kpi_id, **RATCHET}
        ratchet = self.call("CreateMarginRatchet", who, expect, **fields)
        if ratchet is not None:
            self.model.kpis[kpi_id].ratchet_id = ratchet.id
            self.model.apply_ratchet_change(kpi_id)
            self.resources.add(ratchet.id)

    @invariant()
    def the_service_agrees_with_the_model(self) -> None:
        if not self.loan_id:
            return
        loans, metadata = self.suite.loans, self.parties[m.BORROWER].metadata
        loan_id = {"loan_id": self.loan_id}
        loan = loans.GetLoan(pb.GetLoanRequest(**loan_id), metadata=metadata).loan
        kpis = loans.ListKpis(pb.ListKpisRequest(**loan_id), metadata=metadata).kpis.kpis
        results = loans.ListKpiResults(pb.ListKpiResultsRequest(**loan_id), metadata=metadata)
        adjustments = loans.ListMarginAdjustments(
            pb.ListMarginAdjustmentsRequest(**loan_id, page_size=100), metadata=metadata
        ).page.adjustments

        assert pb.LoanState.Name(loan.state) == f"LOAN_STATE_{self.model.state}"
        assert {k.id: pb.KpiStatus.Name(k.status) for k in kpis} == {
            kpi_id: f"KPI_STATUS_{k.status}" for kpi_id, k in self.model.kpis.items()
        }
        assert {
            r.id: pb.KpiResultStatus.Name(r.status) for r in results.kpi_results.kpi_results
        } == {
            result_id: f"KPI_RESULT_STATUS_{r.status}"
            for result_id, r in self.model.results.items()
        }
        assert len(adjustments) == self.model.adjustments
        self._agrees_on_money(loan)

    def _agrees_on_money(self, loan: pb.Loan) -> None:
        """The loan's balances and its ledger are the model's."""
        ledger = self.suite.loans.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(loan_id=self.loan_id, page_size=100),
            metadata=self.parties[m.BORROWER].metadata,
        ).page
        model = self.model
        assert (Decimal(loan.drawn_amount), Decimal(loan.outstanding_amount)) == (
            model.drawn,
            model.drawn - model.repaid,
        )
        assert [
            (pb.LedgerEntryType.Name(e.entry_type), Decimal(e.amount)) for e in ledger.entries
        ] == [(f"LEDGER_ENTRY_TYPE_{kind}", amount) for kind, amount in model.ledger]

    def teardown(self) -> None:
        """Every committed change has exactly one audit event; nothing else has any."""
        if not self.loan_id:
            return
        eventually(lambda: undelivered(self.suite) == 0, "the outbox drained", timeout=20)
        events = [
            e
            for e in audit_log(self.suite.audit, self.parties[m.BORROWER], self.started)
            if e.request_id in self.events or e.resource_id in self.resources
        ]

        assert Counter(e.request_id for e in events) == +self.events
        assert len(events) == sum(self.events.values())


@pytest.fixture(scope="module")
def parties(borrower: Account, lender: Account) -> dict[str, Account]:
    return {m.BORROWER: borrower, m.LENDER: lender}


def test_random_calls_from_both_sides_agree_with_the_model(
    suite: Suite, parties: dict[str, Account]
) -> None:
    machine = type("Machine", (LoanMachine,), {"suite": suite, "parties": parties})
    run_state_machine_as_test(machine, settings=SETTINGS)
