"""Step 7: WatchLoans tells each party of every committed change to its loans, and nothing else.

"Never hears X" is shown without timing: the subscriber then hears a later
change (a sentinel), and changes reach a subscriber in commit order, so X would
have come first.
"""

from __future__ import annotations

import time
import uuid

import pytest
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.watching import rpc as watch_rpcs
from tests.loans.database import refusing_inserts
from tests.loans.factories import create_loan, invite, new_loan, update_loan
from tests.loans.tokens import SigningKey, mint
from tests.loans.watching import Watches, kind
from tests.support import Account, Suite


def rename(suite: Suite, account: Account, loan: pb.Loan, name: str) -> pb.Loan:
    """The loan under a new name, renamed at its etag."""
    response = update_loan(suite.loans, account, loan.id, etag=loan.etag, name=name)
    assert response.HasField("loan"), response.error
    return response.loan


def test_a_subscriber_hears_each_committed_change_with_the_new_etag(
    suite: Suite, watches: Watches
) -> None:
    borrower = suite.register("BORROWER")
    watch = watches.subscribe(suite.loans, borrower)

    created = new_loan(suite.loans, borrower)
    renamed = rename(suite, borrower, created, "Heat Pump Rollout II")

    first, second = watch.change(), watch.change()
    assert (first.loan_id, kind(first), first.etag) == (
        created.id,
        "CHANGE_KIND_CREATED",
        created.etag,
    )
    assert (second.loan_id, kind(second), second.etag) == (
        created.id,
        "CHANGE_KIND_UPDATED",
        renamed.etag,
    )
    assert first.change_time.ToDatetime() <= second.change_time.ToDatetime()


def test_no_subscriber_hears_of_another_organizations_loans(suite: Suite, watches: Watches) -> None:
    ours, theirs = suite.register("BORROWER"), suite.register("BORROWER")
    lender = suite.register("LENDER")
    our_watch = watches.subscribe(suite.loans, ours)
    lender_watch = watches.subscribe(suite.loans, lender)

    new_loan(suite.loans, theirs)  # nobody above is a party to it
    sentinel = new_loan(suite.loans, ours)

    assert our_watch.change().loan_id == sentinel.id
    invited = invite(suite.loans, ours, sentinel.id, lender)
    assert our_watch.change().etag == invited.etag
    heard = lender_watch.change()
    assert (heard.loan_id, kind(heard)) == (sentinel.id, "CHANGE_KIND_LENDER_INVITED")


def test_both_parties_hear_of_a_change_and_a_deletion_has_no_etag(
    suite: Suite, watches: Watches
) -> None:
    borrower, lender = suite.register("BORROWER"), suite.register("LENDER")
    loan = new_loan(suite.loans, borrower, lender)
    borrower_watch = watches.subscribe(suite.loans, borrower)
    lender_watch = watches.subscribe(suite.loans, lender)

    deleted = suite.loans.DeleteLoan(
        pb.DeleteLoanRequest(loan_id=loan.id, etag=loan.etag), metadata=borrower.metadata
    )

    assert deleted.HasField("deletion"), deleted.error
    for watch in (borrower_watch, lender_watch):
        change = watch.change()
        # A subscription promises the changes committed from then on. On a busy PostgreSQL
        # the NOTIFY of the invitation, committed just before, may reach the bus after the
        # subscription: heard late, it is still this loan's, and the deletion follows it.
        while change.loan_id == loan.id and kind(change) == "CHANGE_KIND_LENDER_INVITED":
            change = watch.change()
        assert (change.loan_id, kind(change), change.etag) == (
            loan.id,
            "CHANGE_KIND_DELETED",
            "",
        )


def test_a_replaced_lender_hears_the_invitation_that_removes_it(
    suite: Suite, watches: Watches
) -> None:
    borrower = suite.register("BORROWER")
    replaced, invited = suite.register("LENDER"), suite.register("LENDER")
    loan = new_loan(suite.loans, borrower, replaced)
    replaced_watch = watches.subscribe(suite.loans, replaced)
    invited_watch = watches.subscribe(suite.loans, invited)

    moved = invite(suite.loans, borrower, loan.id, invited)

    for watch in (replaced_watch, invited_watch):
        heard = watch.change()
        # The first invitation, committed just before the subscription, may reach the
        # bus after it on a busy PostgreSQL (as above): heard late, it is exactly that one.
        if (heard.loan_id, kind(heard), heard.etag) == (
            loan.id,
            "CHANGE_KIND_LENDER_INVITED",
            loan.etag,
        ):
            heard = watch.change()
        assert (heard.loan_id, kind(heard), heard.etag) == (
            loan.id,
            "CHANGE_KIND_LENDER_INVITED",
            moved.etag,
        )
    # From now on the loan is no business of the replaced lender's: a later change to it
    # goes unheard, while a change to one of its own loans (the sentinel) arrives.
    rename(suite, borrower, moved, "Heat Pump Rollout III")
    sentinel = new_loan(suite.loans, borrower, replaced)
    assert replaced_watch.change().loan_id == sentinel.id


def test_a_change_that_rolled_back_is_never_announced(suite: Suite, watches: Watches) -> None:
    borrower = suite.register("BORROWER")
    watch = watches.subscribe(suite.loans, borrower)
    # Real fault injection: the idempotency row is written after the change was recorded
    # (on PostgreSQL: after pg_notify ran), so the whole transaction rolls back late.
    with refusing_inserts(suite, "idempotency_records"):
        doomed = create_loan(suite.loans, borrower, request_id=f"doomed-{uuid.uuid4()}")
    sentinel = new_loan(suite.loans, borrower)

    assert doomed.error.code == error_pb2.ERROR_CODE_INTERNAL
    change = watch.change()
    assert (change.loan_id, kind(change)) == (sentinel.id, "CHANGE_KIND_CREATED")


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("admin", error_pb2.ERROR_CODE_PERMISSION_DENIED),
        ("nobody", error_pb2.ERROR_CODE_UNAUTHENTICATED),
    ],
)
def test_who_is_no_party_gets_one_error_and_the_stream_ends(
    suite: Suite, watches: Watches, admin: Account, who: str, code: int
) -> None:
    account = admin if who == "admin" else None

    error = watches.open(suite.loans, account).error()

    assert error.code == code
    assert error.request_id


def test_a_stream_ends_once_its_token_is_no_longer_valid(
    suite: Suite, watches: Watches, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream is re-authenticated as it goes: it never outlives its caller's right to it."""
    monkeypatch.setattr(watch_rpcs, "RECHECK_SECONDS", 0.2)  # the servers run in this process
    borrower = suite.register("BORROWER")
    # Expired 3 s ago: still accepted within the verifier's 5 s leeway, for 2 s more.
    expired = int(time.time()) - 3
    token = mint(signing_key, borrower, iat=expired - 60, exp=expired)
    watch = watches.subscribe(suite.loans, Account(borrower.email, "", "", token))

    error = watch.error()

    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAUTHENTICATED, "TOKEN_EXPIRED")
