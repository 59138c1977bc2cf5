"""Step 5 under races: one etag admits one writer; one request_id makes one write."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from loansuite.common.v1 import error_pb2

from tests.loans.database import actions, count
from tests.loans.factories import get_loan, loan_request, new_loan, update_loan
from tests.support import Account, Suite

T = TypeVar("T")
RACERS = 2
ROUNDS = 5  # a race lost by scheduling luck in one round is unlikely to be lost in all


def race(call: Callable[[int], T], racers: int = RACERS) -> list[T]:
    """Run call(i) in racers threads released together by a barrier."""
    barrier = threading.Barrier(racers)

    def run(i: int) -> T:
        barrier.wait(timeout=10)
        return call(i)

    with ThreadPoolExecutor(racers) as pool:
        return list(pool.map(run, range(racers)))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_of_two_updates_with_one_etag_exactly_one_wins(
    suite: Suite, borrower: Account, round_: int
) -> None:
    loan = new_loan(suite.loans, borrower)

    responses = race(
        lambda i: update_loan(
            suite.loans, borrower, loan.id, etag=loan.etag, name=f"Retrofit {round_}-{i}"
        )
    )

    winners = [r for r in responses if r.HasField("loan")]
    losers = [r.error for r in responses if r.HasField("error")]
    assert len(winners) == 1
    assert [(e.code, e.reason) for e in losers] == [(error_pb2.ERROR_CODE_ABORTED, "ETAG_MISMATCH")]
    assert get_loan(suite.loans, borrower, loan.id).loan == winners[0].loan
    assert actions(suite, loan.id) == ["LOAN_CREATED", "LOAN_UPDATED"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_creates_with_one_request_id_write_once_and_answer_alike(
    suite: Suite, borrower: Account, round_: int
) -> None:
    name = f"Retrofit {uuid.uuid4().hex[:8]}"
    request = loan_request(name=name, request_id=f"create-{uuid.uuid4()}")

    responses = race(lambda _: suite.loans.CreateLoan(request, metadata=borrower.metadata))

    assert responses[0].HasField("loan"), responses[0].error
    assert responses[0] == responses[1]
    assert count(suite, "loans", name=name) == 1
    assert actions(suite, responses[0].loan.id) == ["LOAN_CREATED"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_updates_with_one_request_id_write_once_and_answer_alike(
    suite: Suite, borrower: Account, round_: int
) -> None:
    """A retry racing its original is no conflict: it gets the original's answer."""
    loan = new_loan(suite.loans, borrower)
    request_id = f"update-{uuid.uuid4()}"

    responses = race(
        lambda _: update_loan(
            suite.loans,
            borrower,
            loan.id,
            etag=loan.etag,
            request_id=request_id,
            name=f"Renamed {round_}",
        )
    )

    assert responses[0].HasField("loan"), responses[0].error
    assert responses[0] == responses[1]
    assert actions(suite, loan.id) == ["LOAN_CREATED", "LOAN_UPDATED"]
