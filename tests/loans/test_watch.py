"""Step 7: WatchLoans tells each party of every committed change to its loans, and nothing else.

"Never hears X" is shown without timing: the subscriber then hears a later
change (a sentinel), and changes reach a subscriber in commit order, so X would
have come first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.protobuf.field_mask_pb2 import FieldMask
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import create_engine, text

from services.loans.rpc import watch as watch_rpcs
from tests.loans.journey import login_admin
from tests.loans.watching import LOAN, Watches, create_loan, kind
from tests.support import Account, Suite


@pytest.fixture
def watches() -> Iterator[Watches]:
    opened = Watches()
    yield opened
    opened.cancel_all()


def rename(suite: Suite, account: Account, loan: pb.Loan, name: str) -> pb.Loan:
    response = suite.loans.UpdateLoan(
        pb.UpdateLoanRequest(
            loan_id=loan.id, etag=loan.etag, update_mask=FieldMask(paths=["name"]), name=name
        ),
        metadata=account.metadata,
    )
    assert response.HasField("loan"), response.error
    return response.loan


def invite(suite: Suite, borrower: Account, loan: pb.Loan, lender: Account) -> pb.Loan:
    response = suite.loans.InviteLender(
        pb.InviteLenderRequest(loan_id=loan.id, lender_email=lender.email),
        metadata=borrower.metadata,
    )
    assert response.HasField("loan"), response.error
    return response.loan


def test_a_subscriber_hears_each_committed_change_with_the_new_etag(
    suite: Suite, watches: Watches
) -> None:
    borrower = suite.register("BORROWER")
    watch = watches.subscribe(suite.loans, borrower)

    created = create_loan(suite.loans, borrower)
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

    create_loan(suite.loans, theirs)  # nobody above is a party to it
    sentinel = create_loan(suite.loans, ours)

    assert our_watch.change().loan_id == sentinel.id
    invited = invite(suite, ours, sentinel, lender)
    assert our_watch.change().etag == invited.etag
    heard = lender_watch.change()
    assert (heard.loan_id, kind(heard)) == (sentinel.id, "CHANGE_KIND_LENDER_INVITED")


def test_both_parties_hear_of_a_change_and_a_deletion_has_no_etag(
    suite: Suite, watches: Watches
) -> None:
    borrower, lender = suite.register("BORROWER"), suite.register("LENDER")
    loan = invite(suite, borrower, create_loan(suite.loans, borrower), lender)
    borrower_watch = watches.subscribe(suite.loans, borrower)
    lender_watch = watches.subscribe(suite.loans, lender)

    deleted = suite.loans.DeleteLoan(
        pb.DeleteLoanRequest(loan_id=loan.id, etag=loan.etag), metadata=borrower.metadata
    )

    assert deleted.HasField("deletion"), deleted.error
    for watch in (borrower_watch, lender_watch):
        change = watch.change()
        assert (change.loan_id, kind(change), change.etag) == (
            loan.id,
            "CHANGE_KIND_DELETED",
            "",
        )


# Real fault injection: the idempotency row is written after the change was recorded
# (on PostgreSQL: after pg_notify ran), so the whole transaction rolls back late.
FAIL_LATE = {
    "sqlite": [
        """CREATE TRIGGER fail_late BEFORE INSERT ON idempotency_records
           BEGIN SELECT RAISE(ABORT, 'injected failure'); END"""
    ],
    "postgresql": [
        """CREATE FUNCTION fail_late() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$""",
        """CREATE TRIGGER fail_late BEFORE INSERT ON idempotency_records
           FOR EACH ROW EXECUTE FUNCTION fail_late()""",
    ],
}
HEAL = {
    "sqlite": ["DROP TRIGGER fail_late"],
    "postgresql": ["DROP TRIGGER fail_late ON idempotency_records", "DROP FUNCTION fail_late()"],
}


def execute(suite: Suite, statements: list[str]) -> None:
    engine = create_engine(suite.settings.database_url("loans"))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_a_change_that_rolled_back_is_never_announced(suite: Suite, watches: Watches) -> None:
    borrower = suite.register("BORROWER")
    watch = watches.subscribe(suite.loans, borrower)
    execute(suite, FAIL_LATE[suite.backend])
    try:
        doomed = suite.loans.CreateLoan(
            pb.CreateLoanRequest(**{**_fields(LOAN), "request_id": f"doomed-{uuid.uuid4()}"}),
            metadata=borrower.metadata,
        )
    finally:
        execute(suite, HEAL[suite.backend])
    sentinel = create_loan(suite.loans, borrower)

    assert doomed.error.code == error_pb2.ERROR_CODE_INTERNAL
    change = watch.change()
    assert (change.loan_id, kind(change)) == (sentinel.id, "CHANGE_KIND_CREATED")


def _fields(request: pb.CreateLoanRequest) -> dict[str, object]:
    return {f.name: v for f, v in request.ListFields()}


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("admin", error_pb2.ERROR_CODE_PERMISSION_DENIED),
        ("nobody", error_pb2.ERROR_CODE_UNAUTHENTICATED),
    ],
)
def test_who_is_no_party_gets_one_error_and_the_stream_ends(
    suite: Suite, watches: Watches, who: str, code: int
) -> None:
    account = login_admin(suite) if who == "admin" else None

    error = watches.open(suite.loans, account).error()

    assert error.code == code
    assert error.request_id


def test_a_stream_ends_once_its_token_is_no_longer_valid(
    suite: Suite, watches: Watches, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream is re-authenticated as it goes: it never outlives its caller's right to it."""
    monkeypatch.setattr(watch_rpcs, "RECHECK_SECONDS", 0.2)  # the servers run in this process
    borrower = suite.register("BORROWER")
    # Expired 3 s ago: still accepted within the verifier's 5 s leeway, for 2 s more.
    token = mint_token(suite, borrower, exp=int(time.time()) - 3)
    watch = watches.subscribe(suite.loans, Account(borrower.email, "", "", token))

    error = watch.error()

    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAUTHENTICATED, "TOKEN_EXPIRED")


def mint_token(suite: Suite, account: Account, *, exp: int) -> str:
    """A token signed with the auth service's current key, as auth would sign it."""
    engine = create_engine(suite.settings.database_url("auth"))
    with engine.connect() as conn:
        kid, pem = conn.execute(
            text("SELECT kid, private_key_pem FROM signing_keys ORDER BY generation DESC LIMIT 1")
        ).one()
    engine.dispose()
    claims = {
        "iss": suite.settings.token_issuer,
        "aud": suite.settings.token_audience,
        "sub": account.user_id,
        "iat": exp - 60,
        "exp": exp,
        "org": account.organization_id,
        "role": "BORROWER",
    }
    key = load_pem_private_key(pem.encode(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})  # type: ignore[arg-type]
