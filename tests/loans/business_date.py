"""Moving the loans service's business date (the ``today`` fixture puts it back)."""

from __future__ import annotations

import datetime

from tests.support import Suite


def on(suite: Suite, day: str) -> None:
    """From now on the loans service judges dates as if today were day ("YYYY-MM-DD")."""
    suite.today.day = datetime.date.fromisoformat(day)
