"""The loan's reporting terms: how many days after a KPI period ends its result is due.

Set on CreateLoan and, while the loan is DRAFT, on UpdateLoan; the form carries
the number as its digits, "" when left out (the default then applies).
"""

from __future__ import annotations

from typing import Final

from services.loans.models import Loan
from services.shared.validation import fail

__all__ = [
    "DEFAULT_GRACE_DAYS",
    "REPORTING_FIELDS",
    "REPORTING_REASONS",
    "parse_reporting_grace",
    "reporting_form",
]

DEFAULT_GRACE_DAYS: Final = 120
_GRACE_MAX: Final = 365
REPORTING_FIELDS: Final = ("reporting_grace_days",)
REPORTING_REASONS: Final = frozenset({"GRACE_DAYS_OUT_OF_RANGE"})


def parse_reporting_grace(raw: str) -> int:
    """Days of grace after a period's end: 0 to 365, the default when left out."""
    if not raw:
        return DEFAULT_GRACE_DAYS
    days = int(raw)  # the digits of a wire int32, never free text
    if not 0 <= days <= _GRACE_MAX:
        raise fail("GRACE_DAYS_OUT_OF_RANGE", "must be from 0 to {n} days", n=_GRACE_MAX)
    return days


def reporting_form(loan: Loan) -> dict[str, str]:
    """The stored reporting terms as the form takes them."""
    return {"reporting_grace_days": str(loan.reporting_grace_days)}
