"""LoanService over gRPC: proto in, proto out, one transaction per call.

The RPCs live with their subdomain (loan/, lifecycle/, kpis/, results/, watching/),
each in its package's rpc.py; this class puts them together.
"""

from __future__ import annotations

from services.loans.calendar.rpc import CalendarRpcs
from services.loans.facility.rpc import FacilityRpcs
from services.loans.kpis.rpc import KpiRpcs
from services.loans.ledger.rpc import LedgerRpcs
from services.loans.lifecycle.rpc import LifecycleRpcs
from services.loans.loan.rpc import LoanRpcs
from services.loans.report.rpc import ReportRpcs
from services.loans.results.rpc import ResultRpcs
from services.loans.watching.rpc import WatchRpcs

__all__ = ["LoanServicer"]


class LoanServicer(
    LoanRpcs,
    LifecycleRpcs,
    KpiRpcs,
    ResultRpcs,
    WatchRpcs,
    CalendarRpcs,
    FacilityRpcs,
    LedgerRpcs,
    ReportRpcs,
):
    """Each mutating call: authenticate, load user, authorize, validate, write + audit, notify."""
