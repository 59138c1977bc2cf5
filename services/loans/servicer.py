"""LoanService over gRPC: proto in, proto out, one transaction per call.

The RPCs live in services/loans/rpc/ by topic; this class puts them together.
"""

from __future__ import annotations

from services.loans.rpc.kpis import KpiRpcs
from services.loans.rpc.lifecycle import LifecycleRpcs
from services.loans.rpc.loans import LoanRpcs
from services.loans.rpc.results import ResultRpcs
from services.loans.rpc.terms import TermsRpcs
from services.loans.rpc.watch import WatchRpcs

__all__ = ["LoanServicer"]


class LoanServicer(LoanRpcs, TermsRpcs, LifecycleRpcs, KpiRpcs, ResultRpcs, WatchRpcs):
    """Each mutating call: authenticate, load user, authorize, validate, write + audit, notify."""
