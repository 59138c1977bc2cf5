"""What the attacker does to a copy of the log, and where each verifier must see it."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Connection

from tests.audit.chain_log import (
    Corruption,
    Log,
    delete,
    execute,
    forged,
    move,
    rehash,
    store,
    update,
)

SIZE, BATCH = 3000, 500  # the log's events, and how many each IngestEvents request carries
K = 1234  # where the attacker strikes in the middle of the log


def _edit_field(c: Connection, log: Log) -> None:
    execute(c, "UPDATE audit_events SET resource_id = 'edited' WHERE sequence = :k", k=K)


def _drop_organization(c: Connection, log: Log) -> None:
    organization = log[K].organization_ids[0]
    execute(
        c,
        "DELETE FROM audit_event_organizations WHERE sequence = :k AND organization_id = :o",
        k=K,
        o=organization,
    )


def _delete_event(c: Connection, log: Log) -> None:
    delete(c, "sequence = :k", k=K)


def _insert_event(c: Connection, log: Log) -> None:
    move(c, "sequence >= :k", "sequence + 1", k=K)
    store(c, forged(log[K], K, log[K - 1]))  # rehashed: its own link holds


def _swap_events(c: Connection, log: Log) -> None:
    move(c, "sequence IN (:k, :k + 1)", "CASE WHEN sequence = :k THEN :k + 1 ELSE :k END", k=K)


def _truncate_tail(c: Connection, log: Log) -> None:
    delete(c, "sequence > :n", n=SIZE - 5)


def _forge_hash(c: Connection, log: Log) -> None:
    update(c, rehash(dataclasses.replace(log[K], resource_id="edited"), log[K - 1]))


def _rewrite_tail(c: Connection, log: Log) -> None:
    """Replace the last three events with a consistent forgery: only the head tells."""
    delete(c, "sequence > :n", n=SIZE - 3)
    previous = log[SIZE - 3]
    for sequence in range(SIZE - 2, SIZE + 1):
        previous = forged(log[sequence], sequence, previous)
        store(c, previous)


# scenario: (corruption, problem, first bad sequence, events whose link held)
SCENARIOS: dict[str, tuple[Corruption | None, str, int, int]] = {
    "untouched": (None, "", 0, SIZE),
    "edited_field": (_edit_field, "HASH_MISMATCH", K, K - 1),
    "dropped_organization": (_drop_organization, "HASH_MISMATCH", K, K - 1),
    "deleted_event": (_delete_event, "SEQUENCE_GAP", K, K - 1),
    "inserted_event": (_insert_event, "HASH_MISMATCH", K + 1, K),
    "swapped_events": (_swap_events, "HASH_MISMATCH", K, K - 1),
    "truncated_tail": (_truncate_tail, "TRUNCATED", SIZE - 4, SIZE - 5),
    "forged_hash": (_forge_hash, "HASH_MISMATCH", K + 1, K),
    "rewritten_tail": (_rewrite_tail, "HEAD_MISMATCH", SIZE, SIZE),
}

# Where the attacker rehashed, the last event whose link held is a forgery.
FORGED_LAST_GOOD = {"inserted_event", "forged_hash", "rewritten_tail"}
