"""The fuzzed suite: the three services in process, their parties, the run's values, row counts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fuzz.parties import ROLES, Party, RunValues, callers, enrol, enrol_admin, seed
from tests.fuzz.parties import service_token as issue_service_token
from tests.fuzz.rows import RowCounts
from tests.support import Suite


@dataclass(frozen=True)
class Target:
    """What a fuzzed call needs: the suite, who it may claim to be, and what to put in it."""

    suite: Suite
    values: RunValues
    callers: dict[str, str | None]
    rows: RowCounts


@pytest.fixture(scope="module")
def target(suite: Suite) -> Iterator[Target]:
    """The module's suite (one per backend) with a party of each role and seeded loans."""
    parties: dict[str, Party] = {role: enrol(suite, role) for role in ROLES[:2]}
    parties["admin"] = enrol_admin(suite)
    service = issue_service_token(suite)
    values = seed(suite, parties)
    rows = RowCounts(suite.settings)
    try:
        yield Target(suite, values, callers(parties, service), rows)
    finally:
        rows.close()
