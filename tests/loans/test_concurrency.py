"""Step 5 under races: one etag admits one writer; one request_id makes one write."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import create_engine, text

from tests.support import Account, Suite

T = TypeVar("T")
RACERS = 2
ROUNDS = 5  # a race lost by scheduling luck in one round is unlikely to be lost in all

LOAN = pb.CreateLoanRequest(
    name="Retrofit Programme",
    loan_type=pb.LOAN_TYPE_FLOATING_RATE,
    currency_code="USD",
    principal_amount="750000.00",
    committed_amount="750000.00",
    drawn_amount="0.00",
    start_date="2027-04-01",
    maturity_date="2031-04-01",
)


def race(call: Callable[[int], T], racers: int = RACERS) -> list[T]:
    """Run call(i) in racers threads released together by a barrier."""
    barrier = threading.Barrier(racers)

    def run(i: int) -> T:
        barrier.wait(timeout=10)
        return call(i)

    with ThreadPoolExecutor(racers) as pool:
        return list(pool.map(run, range(racers)))


@pytest.fixture(scope="module")
def borrower(suite: Suite) -> Account:
    return suite.register("BORROWER")


def create_loan(suite: Suite, borrower: Account) -> pb.Loan:
    response = suite.loans.CreateLoan(LOAN, metadata=borrower.metadata)
    assert response.HasField("loan"), response.error
    return response.loan


def rename(suite: Suite, borrower: Account, loan: pb.Loan, name: str, request_id: str = "") -> Any:
    return suite.loans.UpdateLoan(
        pb.UpdateLoanRequest(
            loan_id=loan.id,
            etag=loan.etag,
            update_mask=FieldMask(paths=["name"]),
            name=name,
            request_id=request_id,
        ),
        metadata=borrower.metadata,
    )


def outbox_actions(suite: Suite, resource_id: str) -> list[str]:
    """The actions of the outbox rows about one resource, oldest first."""
    engine = create_engine(suite.settings.database_url("loans"))
    with engine.connect() as conn:
        payloads = conn.execute(text("SELECT payload FROM outbox_events ORDER BY id")).scalars()
        records = [json.loads(p) for p in payloads]
    engine.dispose()
    return [r["action"] for r in records if r["resource_id"] == resource_id]


def count_loans(suite: Suite, name: str) -> int:
    engine = create_engine(suite.settings.database_url("loans"))
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM loans WHERE name = :name")
        total = int(conn.execute(query, {"name": name}).scalar_one())
    engine.dispose()
    return total


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_of_two_updates_with_one_etag_exactly_one_wins(
    suite: Suite, borrower: Account, round_: int
) -> None:
    loan = create_loan(suite, borrower)

    responses = race(lambda i: rename(suite, borrower, loan, f"Retrofit {round_}-{i}"))

    winners = [r for r in responses if r.HasField("loan")]
    losers = [r.error for r in responses if r.HasField("error")]
    assert len(winners) == 1
    assert [(e.code, e.reason) for e in losers] == [(error_pb2.ERROR_CODE_ABORTED, "ETAG_MISMATCH")]
    current = suite.loans.GetLoan(pb.GetLoanRequest(loan_id=loan.id), metadata=borrower.metadata)
    assert current.loan == winners[0].loan
    assert outbox_actions(suite, loan.id) == ["LOAN_CREATED", "LOAN_UPDATED"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_creates_with_one_request_id_write_once_and_answer_alike(
    suite: Suite, borrower: Account, round_: int
) -> None:
    name = f"Retrofit {uuid.uuid4().hex[:8]}"
    request = pb.CreateLoanRequest(name=name, request_id=f"create-{uuid.uuid4()}")
    request.MergeFrom(LOAN)
    request.name = name

    responses = race(lambda _: suite.loans.CreateLoan(request, metadata=borrower.metadata))

    assert responses[0].HasField("loan"), responses[0].error
    assert responses[0] == responses[1]
    assert count_loans(suite, name) == 1
    assert outbox_actions(suite, responses[0].loan.id) == ["LOAN_CREATED"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_updates_with_one_request_id_write_once_and_answer_alike(
    suite: Suite, borrower: Account, round_: int
) -> None:
    """A retry racing its original is no conflict: it gets the original's answer."""
    loan = create_loan(suite, borrower)
    request_id = f"update-{uuid.uuid4()}"

    responses = race(lambda _: rename(suite, borrower, loan, f"Renamed {round_}", request_id))

    assert responses[0].HasField("loan"), responses[0].error
    assert responses[0] == responses[1]
    assert outbox_actions(suite, loan.id) == ["LOAN_CREATED", "LOAN_UPDATED"]
