"""A small pure-Python model of one loan: what each call should answer, and what it changes.

It is written from the rules in docs/ARCHITECTURE.md (who may do what, in
which state) and the stable reasons of the contract, independently of the
service's code. ``expect_*``
says what a call should answer without changing anything; ``apply_*`` records
the effect of a call that succeeded. ``Expect.events`` is how many audit
events the successful call writes: one per changed resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

BORROWER: Final = "borrower"
LENDER: Final = "lender"

DRAFT, PENDING, APPROVED, ACTIVE = "DRAFT", "PENDING_APPROVAL", "APPROVED", "ACTIVE"
CLOSED, REJECTED, WITHDRAWN = "CLOSED", "REJECTED", "WITHDRAWN"
EDITABLE: Final = frozenset({DRAFT, PENDING})
PROPOSED, ACCEPTED = "PROPOSED", "ACCEPTED"
REPORTED, VERIFIED = "REPORTED", "VERIFIED"
REQUESTED = "REQUESTED"


@dataclass(frozen=True)
class Move:
    party: str
    from_states: frozenset[str]
    to_state: str
    illegal: str  # the FAILED_PRECONDITION reason from any other state


TRANSITIONS: Final = {
    "SubmitLoan": Move(BORROWER, frozenset({DRAFT}), PENDING, "LOAN_NOT_DRAFT"),
    "ApproveLoan": Move(LENDER, frozenset({PENDING}), APPROVED, "LOAN_NOT_PENDING_APPROVAL"),
    "RejectLoan": Move(LENDER, frozenset({PENDING}), REJECTED, "LOAN_NOT_PENDING_APPROVAL"),
    "WithdrawLoan": Move(BORROWER, EDITABLE, WITHDRAWN, "LOAN_NOT_DRAFT_OR_PENDING"),
    "ActivateLoan": Move(LENDER, frozenset({APPROVED}), ACTIVE, "LOAN_NOT_APPROVED"),
    "CloseLoan": Move(LENDER, frozenset({ACTIVE}), CLOSED, "LOAN_NOT_ACTIVE"),
}


@dataclass(frozen=True)
class Expect:
    """OK, or an error code's name with the reason (checked when given)."""

    code: str = "OK"
    reason: str = ""
    events: int = 1

    @property
    def ok(self) -> bool:
        return self.code == "OK"


def failed(reason: str, code: str = "FAILED_PRECONDITION") -> Expect:
    return Expect(code, reason, events=0)


@dataclass
class KpiModel:
    status: str = PROPOSED
    ratchet_id: str = ""
    periods: set[int] = field(default_factory=set)  # periods with a standing result


@dataclass
class ResultModel:
    kpi_id: str
    status: str = REPORTED


@dataclass
class LoanModel:
    state: str = DRAFT
    lender: bool = False
    kpis: dict[str, KpiModel] = field(default_factory=dict)
    results: dict[str, ResultModel] = field(default_factory=dict)
    adjustments: int = 0
    # The loan template's amounts; drawdowns by id: (amount, status).
    committed: Decimal = Decimal("1000000.00")
    drawn: Decimal = Decimal("250000.50")
    repaid: Decimal = Decimal(0)
    drawdowns: dict[str, tuple[Decimal, str]] = field(default_factory=dict)
    ledger: list[tuple[str, Decimal]] = field(default_factory=list)  # (entry type, amount)

    def _refused(self, who: str, party: str | None) -> Expect | None:
        """Visibility, then role: NOT_FOUND for an outsider, PERMISSION_DENIED for a wrong side."""
        if who == LENDER and not self.lender:
            return failed("", "NOT_FOUND")
        if party is not None and who != party:
            return failed("", "PERMISSION_DENIED")
        return None

    def _editable(self) -> Expect | None:
        return None if self.state in EDITABLE else failed("LOAN_NOT_EDITABLE")

    def expect_invite(self, who: str) -> Expect:
        if refused := self._refused(who, BORROWER):
            return refused
        if self.state != DRAFT:
            return failed("LOAN_NOT_DRAFT")
        return Expect(events=0 if self.lender else 1)  # the same lender again changes nothing

    def apply_invite(self) -> None:
        self.lender = True

    def expect_transition(self, rpc: str, who: str) -> Expect:
        move = TRANSITIONS[rpc]
        if refused := self._refused(who, move.party):
            return refused
        if self.state not in move.from_states:
            return failed(move.illegal)
        if rpc == "SubmitLoan" and not self.lender:
            return failed("LENDER_REQUIRED")
        if rpc in ("SubmitLoan", "ApproveLoan") and not self.kpis:
            return failed("KPIS_REQUIRED")
        if rpc == "ApproveLoan" and any(k.status != ACCEPTED for k in self.kpis.values()):
            return failed("KPIS_NOT_ALL_ACCEPTED")
        return Expect()

    def apply_transition(self, rpc: str) -> None:
        self.state = TRANSITIONS[rpc].to_state

    def expect_create_kpi(self, who: str) -> Expect:
        return self._refused(who, BORROWER) or self._editable() or Expect()

    def apply_create_kpi(self, kpi_id: str) -> None:
        self.kpis[kpi_id] = KpiModel()

    def expect_edit_kpi(self, who: str) -> Expect:
        """UpdateKpi and DeleteKpi alike."""
        return self._refused(who, BORROWER) or self._editable() or Expect()

    def apply_update_kpi(self, kpi_id: str) -> None:
        self.kpis[kpi_id].status = PROPOSED  # the lender reviews what it will be held to

    def apply_delete_kpi(self, kpi_id: str) -> None:
        del self.kpis[kpi_id]  # its ratchet goes with it, in the same event

    def expect_review(self, who: str, kpi_id: str) -> Expect:
        if refused := self._refused(who, LENDER) or self._editable():
            return refused
        if self.kpis[kpi_id].status != PROPOSED:
            return failed("KPI_ALREADY_REVIEWED")
        return Expect()

    def apply_review(self, kpi_id: str, status: str) -> None:
        self.kpis[kpi_id].status = status

    def expect_create_ratchet(self, who: str, kpi_id: str) -> Expect:
        if refused := self._refused(who, BORROWER) or self._editable():
            return refused
        if self.kpis[kpi_id].ratchet_id:
            return failed("RATCHET_EXISTS", "ALREADY_EXISTS")
        return self._ratchet_changed(kpi_id)

    def expect_delete_ratchet(self, who: str, kpi_id: str) -> Expect:
        return self._refused(who, BORROWER) or self._editable() or self._ratchet_changed(kpi_id)

    def _ratchet_changed(self, kpi_id: str) -> Expect:
        """The ratchet's event, and KPI_REVIEW_REOPENED when its KPI had been reviewed."""
        return Expect(events=1 if self.kpis[kpi_id].status == PROPOSED else 2)

    def apply_ratchet_change(self, kpi_id: str) -> None:
        self.kpis[kpi_id].status = PROPOSED  # the lender reviews the ratchet with its KPI

    def expect_report(self, who: str, kpi_id: str, period: int) -> Expect:
        if refused := self._refused(who, BORROWER):
            return refused
        if self.state != ACTIVE:
            return failed("LOAN_NOT_ACTIVE")
        kpi = self.kpis[kpi_id]
        if kpi.status != ACCEPTED:
            return failed("KPI_NOT_ACCEPTED")
        if period in kpi.periods:
            return failed("PERIOD_OVERLAPS")
        return Expect()

    def apply_report(self, kpi_id: str, result_id: str, period: int) -> None:
        self.kpis[kpi_id].periods.add(period)
        self.results[result_id] = ResultModel(kpi_id)

    def expect_verify(self, who: str, result_id: str) -> Expect:
        if refused := self._refused(who, LENDER):
            return refused
        if self.state != ACTIVE:
            return failed("LOAN_NOT_ACTIVE")
        result = self.results[result_id]
        if result.status != REPORTED:
            return failed("RESULT_NOT_REPORTED")
        # The result's event, and the margin adjustment's when its KPI has a ratchet.
        return Expect(events=2 if self.kpis[result.kpi_id].ratchet_id else 1)

    def apply_verify(self, result_id: str) -> None:
        result = self.results[result_id]
        result.status = VERIFIED
        self.adjustments += 1 if self.kpis[result.kpi_id].ratchet_id else 0

    def _active(self) -> Expect | None:
        return None if self.state == ACTIVE else failed("LOAN_NOT_ACTIVE")

    def _fits(self, amount: Decimal) -> Expect | None:
        """A drawing within committed minus drawn; pending requests reserve nothing."""
        fits = amount <= self.committed - self.drawn
        return None if fits else failed("DRAWDOWN_EXCEEDS_AVAILABLE")

    def expect_request_drawdown(self, who: str, amount: Decimal) -> Expect:
        return self._refused(who, BORROWER) or self._active() or self._fits(amount) or Expect()

    def apply_request_drawdown(self, drawdown_id: str, amount: Decimal) -> None:
        self.drawdowns[drawdown_id] = (amount, REQUESTED)

    def expect_decide_drawdown(self, who: str, drawdown_id: str, approve: bool) -> Expect:
        """ApproveDrawdown needs an ACTIVE loan and room to draw; RejectDrawdown neither."""
        amount, status = self.drawdowns[drawdown_id]
        if refused := self._refused(who, LENDER):
            return refused
        if approve and (inactive := self._active()):
            return inactive
        if status != REQUESTED:
            return failed("DRAWDOWN_ALREADY_DECIDED")
        return (self._fits(amount) if approve else None) or Expect()

    def apply_decide_drawdown(self, drawdown_id: str, approve: bool) -> None:
        amount, _ = self.drawdowns[drawdown_id]
        self.drawdowns[drawdown_id] = (amount, "APPROVED" if approve else "REJECTED")
        if approve:
            self.drawn += amount
            self.ledger.append(("DRAWDOWN", amount))

    def expect_repayment(self, who: str, amount: Decimal) -> Expect:
        if refused := self._refused(who, LENDER) or self._active():
            return refused
        if amount > self.drawn - self.repaid:
            return failed("REPAYMENT_EXCEEDS_OUTSTANDING")
        return Expect()

    def apply_repayment(self, amount: Decimal) -> None:
        self.repaid += amount
        self.ledger.append(("REPAYMENT", amount))
