"""Every service's migrations build what its models declare, come down to base, and go up again.

The revisions are read from each service's script directory, so a new revision
is walked without editing this module. The version is read through the
service's own env.py, from whichever version table it configures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, MetaData, inspect

from services.audit import models as audit_models
from services.auth import models as auth_models
from services.loans import models as loans_models
from services.shared.db import Database
from services.shared.migrations import upgrade

# service → (script location, the metadata its migrations must build)
SERVICES: dict[str, tuple[str, MetaData]] = {
    "auth": ("services.auth:migrations", auth_models.Base.metadata),
    "loans": ("services.loans:migrations", loans_models.Base.metadata),
    "audit": ("services.audit:migrations", audit_models.Base.metadata),
}


@dataclass(frozen=True)
class _State:
    """What a database holds: its revisions by its version table, and its other tables."""

    heads: tuple[str, ...]
    version_table: str
    tables: frozenset[str]


def _config(location: str) -> Config:
    config = Config()
    config.set_main_option("script_location", location)
    return config


def _state(db: Database, location: str) -> _State:
    """Run the service's env.py without migrating, to read the version as it configures it."""
    config = _config(location)
    script = ScriptDirectory.from_config(config)
    seen: list[MigrationContext] = []

    def read(revision: object, context: MigrationContext) -> list[object]:
        seen.append(context)
        return []  # nothing to run

    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        with EnvironmentContext(config, script, fn=read):
            script.run_env()
        (context,) = seen
        heads = tuple(context.get_current_heads())
        tables = set(inspect(connection).get_table_names())
    return _State(heads, context.version_table, frozenset(tables - {context.version_table}))


def _migrate(db: Database, location: str, revision: str, *, down: bool = False) -> None:
    config = _config(location)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _schema(db: Database) -> dict[str, tuple[object, ...]]:
    """Each table's columns, keys, indexes and checks, as the database reports them."""
    with db.engine.connect() as connection:
        inspector = inspect(connection)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                inspector.get_pk_constraint(table)["constrained_columns"],
                sorted(
                    (k["constrained_columns"], k["referred_table"])
                    for k in inspector.get_foreign_keys(table)
                ),
                sorted(str(i["name"]) for i in inspector.get_indexes(table)),
                sorted(str(u["name"]) for u in inspector.get_unique_constraints(table)),
                sorted(str(c["name"]) for c in inspector.get_check_constraints(table)),
            )
            for table in inspector.get_table_names()
        }


def _below(script: Script) -> str | None:
    """The one revision a revision sits on; None at base."""
    down = script.down_revision
    assert not isinstance(down, tuple | list), f"{script.revision} merges {down}: not linear"
    return down


def _checks(connection: Connection, metadata: MetaData) -> tuple[dict[str, set[str]], ...]:
    """CHECK constraint names per table, as declared and as built (autogenerate skips them)."""
    inspector = inspect(connection)
    declared = {
        table.name: {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        for table in metadata.sorted_tables
    }
    built = {
        name: {str(c["name"]) for c in inspector.get_check_constraints(name)}
        for name in metadata.tables
    }
    return declared, built


@pytest.mark.parametrize("service", SERVICES)
def test_upgrading_builds_exactly_what_the_models_declare(
    service: str, new_database_url: Callable[[str], str]
) -> None:
    location, metadata = SERVICES[service]
    head = ScriptDirectory.from_config(_config(location)).get_current_head()
    db = Database(new_database_url(service))
    try:
        upgrade(db, location)
        upgrade(db, location)  # a second start finds nothing to do
        state = _state(db, location)
        with db.engine.connect() as connection:
            options = {"compare_type": True, "version_table": state.version_table}
            context = MigrationContext.configure(connection, opts=options)
            differences = compare_metadata(context, metadata)
            declared, built = _checks(connection, metadata)
    finally:
        db.dispose()

    assert state.heads == (head,)
    assert state.tables == set(metadata.tables)
    assert differences == []
    assert built == declared


@pytest.mark.parametrize("service", SERVICES)
def test_each_revision_comes_down_and_up_again_to_base_and_back_to_head(
    service: str, new_database_url: Callable[[str], str]
) -> None:
    location, metadata = SERVICES[service]
    revisions = list(ScriptDirectory.from_config(_config(location)).walk_revisions())  # head first
    db = Database(new_database_url(service))
    try:
        upgrade(db, location)
        states, round_trips = [_state(db, location)], []
        for revision in revisions:
            # Down, up and down again: a downgrade that leaves something behind
            # makes the second upgrade fail or build another schema.
            before = _schema(db)
            _migrate(db, location, _below(revision) or "base", down=True)
            _migrate(db, location, revision.revision)
            round_trips.append(_schema(db) == before)
            _migrate(db, location, _below(revision) or "base", down=True)
            states.append(_state(db, location))
        upgrade(db, location)
        again = _state(db, location)
        with db.engine.connect() as connection:
            options = {"compare_type": True, "version_table": again.version_table}
            context = MigrationContext.configure(connection, opts=options)
            differences = compare_metadata(context, metadata)
    finally:
        db.dispose()

    assert round_trips == [True] * len(revisions)
    assert [state.heads for state in states] == [(r.revision,) for r in revisions] + [()]
    assert states[-1].tables == set()  # only the version table is left at base
    assert {state.version_table for state in states} == {states[0].version_table}
    assert again == states[0]
    assert differences == []
