"""The words of the loans domain: every enumerated value a loan, KPI or result can take.

Each enum is stored by its value (``DRAFT``) under a check constraint, and
travels on the wire and in audit events by its proto enum name, which is the
class name in UPPER_SNAKE plus the value (``LoanState.DRAFT.wire`` is
``LOAN_STATE_DRAFT``). A test ties every class to its proto enum both ways.
"""

from __future__ import annotations

import enum
import re
from typing import Final

__all__ = [
    "SHARE_TYPES",
    "ChangeKind",
    "DrawdownStatus",
    "InterestPeriod",
    "KpiDirection",
    "KpiOutcome",
    "KpiResultStatus",
    "KpiStatus",
    "KpiType",
    "LedgerEntryType",
    "LoanState",
    "LoanType",
    "ObservationFrequency",
    "ReferenceRate",
    "ReportingStatus",
    "WireEnum",
]

_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


class WireEnum(enum.StrEnum):
    """A stored value whose proto enum name is the class name in UPPER_SNAKE + ``_`` + value."""

    @classmethod
    def prefix(cls) -> str:
        """The proto enum's value prefix, e.g. ``LOAN_STATE_`` for LoanState."""
        return _WORD_START.sub("_", cls.__name__).upper() + "_"

    @property
    def wire(self) -> str:
        """The proto enum name of this value, as clients and audit events spell it."""
        return f"{self.prefix()}{self.value}"


class LoanType(WireEnum):
    """The kinds of loan."""

    FIXED_RATE = "FIXED_RATE"
    FLOATING_RATE = "FLOATING_RATE"
    AMORTIZED = "AMORTIZED"
    ANNUITY = "ANNUITY"
    BALLOON = "BALLOON"
    CREDIT_LINE = "CREDIT_LINE"
    REVOLVING_CREDIT_LINE = "REVOLVING_CREDIT_LINE"
    CREDIT_CARD = "CREDIT_CARD"


class LoanState(WireEnum):
    """Where a loan is in its lifecycle (lifecycle/transitions.py moves it)."""

    DRAFT = "DRAFT"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"
    REJECTED = "REJECTED"
    WITHDRAWN = "WITHDRAWN"


class KpiType(WireEnum):
    """What a KPI measures."""

    GHG_EMISSIONS = "GHG_EMISSIONS"
    EMISSIONS_INTENSITY = "EMISSIONS_INTENSITY"
    ENERGY_CONSUMPTION = "ENERGY_CONSUMPTION"
    WATER_CONSUMPTION = "WATER_CONSUMPTION"
    RENEWABLE_ENERGY_SHARE = "RENEWABLE_ENERGY_SHARE"
    WASTE_RECYCLED_SHARE = "WASTE_RECYCLED_SHARE"
    GENDER_DIVERSITY_SHARE = "GENDER_DIVERSITY_SHARE"
    SAFETY_INCIDENT_RATE = "SAFETY_INCIDENT_RATE"
    CUSTOM = "CUSTOM"


# Shares are percentages (unit "%", values 0 to 100); other types take any non-negative decimal.
SHARE_TYPES: Final = frozenset(
    {KpiType.RENEWABLE_ENERGY_SHARE, KpiType.WASTE_RECYCLED_SHARE, KpiType.GENDER_DIVERSITY_SHARE}
)


class KpiDirection(WireEnum):
    """Which way a KPI's value improves."""

    LOWER_IS_BETTER = "LOWER_IS_BETTER"
    HIGHER_IS_BETTER = "HIGHER_IS_BETTER"


class ObservationFrequency(WireEnum):
    """How often a KPI is observed and reported."""

    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    SEMI_ANNUAL = "SEMI_ANNUAL"
    ANNUAL = "ANNUAL"


class KpiStatus(WireEnum):
    """Where a KPI is in the lender's review; any edit sends it back to PROPOSED."""

    PROPOSED = "PROPOSED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class KpiResultStatus(WireEnum):
    """Where a reported result is: reported, verified, or replaced by a restatement."""

    REPORTED = "REPORTED"
    VERIFIED = "VERIFIED"
    SUPERSEDED = "SUPERSEDED"


class KpiOutcome(WireEnum):
    """Whether a verified result met its KPI's target."""

    PASSED = "PASSED"
    FAILED = "FAILED"


class ChangeKind(WireEnum):
    """What a WatchLoans change notification says happened to a loan."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    STATE_CHANGED = "STATE_CHANGED"
    LENDER_INVITED = "LENDER_INVITED"
    KPI_CHANGED = "KPI_CHANGED"
    RATCHET_CHANGED = "RATCHET_CHANGED"
    RESULT_CHANGED = "RESULT_CHANGED"
    LEDGER_CHANGED = "LEDGER_CHANGED"


class ReferenceRate(WireEnum):
    """The benchmark a loan's margin is quoted over; FIXED when there is none."""

    SOFR = "SOFR"
    SONIA = "SONIA"
    EURIBOR = "EURIBOR"
    TONA = "TONA"
    FIXED = "FIXED"


class InterestPeriod(WireEnum):
    """How often a loan's interest is fixed and paid, counted from its start date."""

    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    SEMI_ANNUAL = "SEMI_ANNUAL"


class DrawdownStatus(WireEnum):
    """Where a drawdown request is: waiting for the lender, or decided."""

    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class LedgerEntryType(WireEnum):
    """What moved money on a loan."""

    DRAWDOWN = "DRAWDOWN"
    REPAYMENT = "REPAYMENT"


class ReportingStatus(WireEnum):
    """Where a KPI's observation period stands on the reporting calendar (never stored)."""

    UPCOMING = "UPCOMING"
    DUE = "DUE"
    REPORTED = "REPORTED"
    VERIFIED = "VERIFIED"
    OVERDUE = "OVERDUE"
    MISSED = "MISSED"
