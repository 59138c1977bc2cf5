"""The auth database itself refuses a role or organization type outside its vocabulary.

What every service's migrations share (models, downgrades, version table) is
tested in tests/test_migrations.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from services.auth.models import Organization, User
from services.auth.wiring import MIGRATIONS
from services.shared.db import Database
from services.shared.migrations import upgrade

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _organization(organization_id: str, organization_type: str) -> dict[str, object]:
    return {"id": organization_id, "name": "Org", "type": organization_type, "create_time": NOW}


def _user(user_id: str, role: str) -> dict[str, object]:
    return {
        "id": user_id,
        "email": f"{user_id}@example.com",
        "name": "Someone",
        "role": role,
        "organization_id": "org-ok",
        "password_hash": "x",
        "active": True,
        "create_time": NOW,
        "update_time": NOW,
    }


@pytest.mark.parametrize(
    ("table", "row"),
    [(Organization, _organization("org-bad", "BANK")), (User, _user("user-bad", "ROOT"))],
    ids=["organization-type", "user-role"],
)
def test_a_value_outside_the_vocabulary_is_refused_by_the_database(
    table: type[Organization | User],
    row: dict[str, object],
    new_database_url: Callable[[str], str],
) -> None:
    db = Database(new_database_url("auth"))
    try:
        upgrade(db, MIGRATIONS)
        with db.engine.begin() as connection:  # the same rows with known values are accepted
            connection.execute(insert(Organization), [_organization("org-ok", "LENDER")])
            connection.execute(insert(User), [_user("user-ok", "LENDER")])
        # Core inserts of plain strings: SQLAlchemy's Enum passes them through unchecked.
        with pytest.raises(IntegrityError), db.engine.begin() as connection:
            connection.execute(insert(table), [row])
    finally:
        db.dispose()
