"""VerifyChain's walk: from the last verified checkpoint on, so a call costs what is new.

The full recomputation from the first event (``use_cases.verify_chain``) is what
`loansuite audit verify` runs offline, straight from the database: it never
trusts the checkpoint, which lives in the database it vouches for.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy.orm import Session

from services.audit import queries
from services.audit.chain import Head, Verification, verify

__all__ = ["record_checkpoint", "verify_new_events"]


def verify_new_events(session: Session, *, expected_head: Head | None) -> Verification:
    """Verify the chain from the checkpoint on, so a call costs only what is new.

    The prefix up to the checkpoint was verified by an earlier call. Of it, the walk
    re-reads only the checkpoint's own event (its link, and its hash against the
    checkpoint) and, if the expected head lies inside it, that head's event. An edit
    deeper inside is for the full, offline recomputation (``verify_chain``) to find.
    """
    start = queries.checkpoint(session)
    if start is None:
        return verify(queries.chained_events(session), expected_head=expected_head)
    before = _before_checkpoint(session, start)
    if isinstance(before, Verification):
        return dataclasses.replace(before, expected_head=expected_head)
    walk_expected = expected_head
    if expected_head is not None and expected_head.sequence < start.sequence:
        broken = _check_verified_head(session, expected_head)
        if broken is not None:
            return broken
        walk_expected = None  # attested: the walk goes on over what is new
    events = queries.chained_events(session, after=start.sequence - 1)
    result = verify(events, expected_head=walk_expected, start=before)
    return dataclasses.replace(result, expected_head=expected_head)


def _before_checkpoint(session: Session, start: Head) -> Head | Verification | None:
    """The event before the checkpoint, to walk on from; a Verification if either changed."""
    stored = queries.event_hash(session, start.sequence)
    if stored != start.hash:
        # Changed since it was verified; where exactly, only the full walk can say.
        problem = "SEQUENCE_GAP" if stored is None else "HASH_MISMATCH"
        return _broken_prefix(start.sequence, problem)
    if start.sequence == 1:
        return None  # the walk starts from the genesis hash
    previous = queries.event_hash(session, start.sequence - 1)
    if previous is None:
        return _broken_prefix(start.sequence - 1, "SEQUENCE_GAP")
    return Head(start.sequence - 1, previous)


def _broken_prefix(sequence: int, problem: str) -> Verification:
    return Verification(
        intact=False, checked_events=0, first_bad_sequence=sequence, problem=problem
    )


def _check_verified_head(session: Session, expected: Head) -> Verification | None:
    """An expected head inside the verified prefix: None if the stored event is that head."""
    stored = queries.event_hash(session, expected.sequence)
    if stored == expected.hash:
        return None
    if stored is None:  # the prefix lost an event since it was verified
        problem, checked, head = "SEQUENCE_GAP", expected.sequence - 1, None
    else:
        problem, checked, head = "HEAD_MISMATCH", expected.sequence, Head(expected.sequence, stored)
    return Verification(
        intact=False,
        checked_events=checked,
        first_bad_sequence=expected.sequence,
        problem=problem,
        head=head,
        expected_head=expected,
    )


def record_checkpoint(session: Session, result: Verification, *, now: datetime) -> None:
    """After an intact verification, continue the next one from its last event."""
    if result.intact and result.head is not None:
        queries.advance_checkpoint(session, result.head, now=now)
