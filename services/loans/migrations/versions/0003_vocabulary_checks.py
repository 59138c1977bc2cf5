"""vocabulary check constraints

Every enumerated column of the loans domain accepts only its vocabulary's
values. The lists are written out here, not imported: a migration describes
the schema as it was at its revision.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOAN_STATES = (
    "DRAFT",
    "PENDING_APPROVAL",
    "APPROVED",
    "ACTIVE",
    "CLOSED",
    "REJECTED",
    "WITHDRAWN",
)
_LOAN_TYPES = (
    *("FIXED_RATE", "FLOATING_RATE", "AMORTIZED", "ANNUITY", "BALLOON"),
    *("CREDIT_LINE", "REVOLVING_CREDIT_LINE", "CREDIT_CARD"),
)
_KPI_TYPES = (
    *("GHG_EMISSIONS", "EMISSIONS_INTENSITY", "ENERGY_CONSUMPTION", "WATER_CONSUMPTION"),
    *("RENEWABLE_ENERGY_SHARE", "WASTE_RECYCLED_SHARE", "GENDER_DIVERSITY_SHARE"),
    *("SAFETY_INCIDENT_RATE", "CUSTOM"),
)
_DIRECTIONS = ("LOWER_IS_BETTER", "HIGHER_IS_BETTER")
_FREQUENCIES = ("MONTHLY", "QUARTERLY", "SEMI_ANNUAL", "ANNUAL")
_KPI_STATUSES = ("PROPOSED", "ACCEPTED", "REJECTED")
_RESULT_STATUSES = ("REPORTED", "VERIFIED", "SUPERSEDED")
_OUTCOMES = ("PASSED", "FAILED")

# table → (constraint name, column, allowed values); names as the models declare them.
_CHECKS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "loans": [("loan_type", "loan_type", _LOAN_TYPES), ("loan_state", "state", _LOAN_STATES)],
    "loan_state_changes": [
        ("from_state", "from_state", _LOAN_STATES),
        ("to_state", "to_state", _LOAN_STATES),
    ],
    "kpis": [
        ("kpi_type", "kpi_type", _KPI_TYPES),
        ("kpi_direction", "direction", _DIRECTIONS),
        ("observation_frequency", "observation_frequency", _FREQUENCIES),
        ("kpi_status", "status", _KPI_STATUSES),
    ],
    "kpi_results": [
        ("kpi_result_status", "status", _RESULT_STATUSES),
        ("kpi_result_outcome", "outcome", _OUTCOMES),
    ],
    "margin_adjustments": [("adjustment_outcome", "outcome", _OUTCOMES)],
}


def upgrade() -> None:
    for table, checks in _CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for name, column, values in checks:
                allowed = ", ".join(f"'{value}'" for value in values)
                batch.create_check_constraint(name, f"{column} IN ({allowed})")


def downgrade() -> None:
    for table, checks in _CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for name, _, _ in checks:
                batch.drop_constraint(name, type_="check")
