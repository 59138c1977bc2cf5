"""Today's business date, as the loans service judges dates: a seam that tests turn.

Reporting periods end, results fall due and loans start on business dates
(UTC). Everything that compares a business date with today asks a ``Today``
handed down from the wiring, never the system clock, so that a test can stand
on any day of a loan's life.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

__all__ = ["Today", "utc_today"]

Today = Callable[[], datetime.date]


def utc_today() -> datetime.date:
    """The current date in UTC."""
    return datetime.datetime.now(datetime.UTC).date()
