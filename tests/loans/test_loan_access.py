"""Steps 1-3 of every loan call: the token, the user, the role and the organization."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.factories import loan_request, new_loan
from tests.loans.tokens import SigningKey, mint
from tests.support import Account, Suite


def create_with(suite: Suite, authorization: str | None) -> error_pb2.Error:
    metadata = () if authorization is None else (("authorization", authorization),)
    response = suite.loans.CreateLoan(loan_request(), metadata=metadata)
    assert response.WhichOneof("result") == "error"
    return response.error


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    return ".".join([header, payload, base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")])


def test_no_token_is_unauthenticated(suite: Suite) -> None:
    error = create_with(suite, None)
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAUTHENTICATED, "TOKEN_MISSING")


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcg==", "Bearer "]
)
def test_a_malformed_token_is_unauthenticated(suite: Suite, authorization: str) -> None:
    error = create_with(suite, authorization)
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAUTHENTICATED, "TOKEN_MALFORMED")


def test_a_tampered_signature_is_unauthenticated(suite: Suite, borrower: Account) -> None:
    error = create_with(suite, f"Bearer {tampered(borrower.access_token)}")
    assert (error.code, error.reason) == (
        error_pb2.ERROR_CODE_UNAUTHENTICATED,
        "TOKEN_BAD_SIGNATURE",
    )


def test_a_tampered_payload_is_unauthenticated(
    suite: Suite, borrower: Account, signing_key: SigningKey
) -> None:
    other = suite.register("BORROWER")
    forged_payload = mint(signing_key, other).split(".")[1]
    header, _, signature = borrower.access_token.split(".")
    error = create_with(suite, f"Bearer {header}.{forged_payload}.{signature}")
    assert error.reason == "TOKEN_BAD_SIGNATURE"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "TOKEN_EXPIRED"),
        ({"aud": "another-service"}, "TOKEN_WRONG_AUDIENCE"),
        ({"iss": "someone-else"}, "TOKEN_WRONG_ISSUER"),
    ],
)
def test_a_validly_signed_but_unacceptable_token_is_unauthenticated(
    suite: Suite,
    borrower: Account,
    signing_key: SigningKey,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    error = create_with(suite, f"Bearer {mint(signing_key, borrower, **overrides)}")
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAUTHENTICATED, reason)


def test_a_token_signed_by_another_key_is_unauthenticated(
    suite: Suite, borrower: Account, signing_key: SigningKey
) -> None:
    impostor = Ed25519PrivateKey.generate()
    same_kid = SigningKey(signing_key.kid, impostor)
    unknown_kid = SigningKey(f"kid-{uuid.uuid4().hex}", impostor)

    same_kid_error = create_with(suite, f"Bearer {mint(same_kid, borrower)}")
    unknown_kid_error = create_with(suite, f"Bearer {mint(unknown_kid, borrower)}")

    assert same_kid_error.reason == "TOKEN_BAD_SIGNATURE"
    assert unknown_kid_error.reason == "TOKEN_UNKNOWN_KEY"


def test_a_minted_token_that_is_acceptable_works(
    suite: Suite, borrower: Account, signing_key: SigningKey
) -> None:
    """The counterpart of the refusals above: the same minting, nothing wrong, succeeds."""
    response = suite.loans.CreateLoan(
        loan_request(), metadata=(("authorization", f"Bearer {mint(signing_key, borrower)}"),)
    )
    assert response.HasField("loan")


def test_the_role_comes_from_the_current_profile_not_the_token(
    suite: Suite, signing_key: SigningKey
) -> None:
    lender = suite.register("LENDER")
    claims_borrower = mint(signing_key, lender, role="BORROWER")
    error = create_with(suite, f"Bearer {claims_borrower}")
    assert (error.code, error.reason) == (
        error_pb2.ERROR_CODE_PERMISSION_DENIED,
        "ROLE_NOT_ALLOWED",
    )


def test_a_lender_cannot_create_a_loan_even_with_invalid_input(suite: Suite) -> None:
    lender = suite.register("LENDER")
    response = suite.loans.CreateLoan(pb.CreateLoanRequest(), metadata=lender.metadata)
    assert (response.error.code, response.error.reason) == (
        error_pb2.ERROR_CODE_PERMISSION_DENIED,
        "ROLE_NOT_ALLOWED",
    )


def test_another_organizations_loan_is_not_found(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    outsiders = [suite.register("BORROWER"), suite.register("LENDER")]

    for outsider in outsiders:
        got = suite.loans.GetLoan(pb.GetLoanRequest(loan_id=loan.id), metadata=outsider.metadata)
        listed = suite.loans.ListLoans(pb.ListLoansRequest(), metadata=outsider.metadata)
        assert (got.error.code, got.error.reason) == (
            error_pb2.ERROR_CODE_NOT_FOUND,
            "LOAN_NOT_FOUND",
        )
        assert loan.id not in [item.id for item in listed.page.loans]

    mine = suite.loans.GetLoan(pb.GetLoanRequest(loan_id=loan.id), metadata=borrower.metadata)
    assert mine.loan == loan


@pytest.mark.parametrize(
    ("loan_id", "code"),
    [
        ("", error_pb2.ERROR_CODE_INVALID_ARGUMENT),
        ("not-a-uuid", error_pb2.ERROR_CODE_NOT_FOUND),
        # Named, not shown: every worker of a parallel run must collect the same test ids.
        pytest.param(str(uuid.uuid4()), error_pb2.ERROR_CODE_NOT_FOUND, id="random-uuid-4"),
    ],
)
def test_get_loan_of_no_loan(suite: Suite, borrower: Account, loan_id: str, code: int) -> None:
    response = suite.loans.GetLoan(pb.GetLoanRequest(loan_id=loan_id), metadata=borrower.metadata)
    assert response.error.code == code


def test_list_loans_pages_newest_first_without_gaps(suite: Suite) -> None:
    owner = suite.register("BORROWER")
    created = [new_loan(suite.loans, owner).id for _ in range(5)]
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = suite.loans.ListLoans(
            pb.ListLoansRequest(page_size=2, page_token=token), metadata=owner.metadata
        ).page
        seen += [loan.id for loan in page.loans]
        token = page.next_page_token
        if not token:
            break

    assert seen == list(reversed(created))


def test_list_loans_filters_by_state(suite: Suite) -> None:
    owner = suite.register("BORROWER")
    new_loan(suite.loans, owner)

    drafts = suite.loans.ListLoans(
        pb.ListLoansRequest(filter=pb.LoanFilter(states=[pb.LOAN_STATE_DRAFT])),
        metadata=owner.metadata,
    )
    active = suite.loans.ListLoans(
        pb.ListLoansRequest(filter=pb.LoanFilter(states=[pb.LOAN_STATE_ACTIVE])),
        metadata=owner.metadata,
    )

    assert len(drafts.page.loans) == 1
    assert list(active.page.loans) == []


def test_a_filter_of_several_states_pages_through_every_match(suite: Suite) -> None:
    owner = suite.register("BORROWER")
    created = [new_loan(suite.loans, owner).id for _ in range(3)]
    states = [pb.LOAN_STATE_ACTIVE, pb.LOAN_STATE_DRAFT, pb.LOAN_STATE_PENDING_APPROVAL]
    seen: list[str] = []
    token = ""
    for _ in range(5):
        request = pb.ListLoansRequest(
            page_size=1, page_token=token, filter=pb.LoanFilter(states=states)
        )
        page = suite.loans.ListLoans(request, metadata=owner.metadata).page
        seen += [loan.id for loan in page.loans]
        token = page.next_page_token
        if not token:
            break

    assert seen == list(reversed(created))
    two = pb.LoanFilter(states=[pb.LOAN_STATE_ACTIVE, pb.LOAN_STATE_PENDING_APPROVAL])
    none = suite.loans.ListLoans(pb.ListLoansRequest(filter=two), metadata=owner.metadata)
    assert none.HasField("page")
    assert list(none.page.loans) == []


def test_states_the_server_does_not_know_match_no_loan(suite: Suite) -> None:
    owner = suite.register("BORROWER")
    new_loan(suite.loans, owner)
    unknown = 999  # a state a newer client may ask for

    def listed(states: list[int]) -> int:
        request = pb.ListLoansRequest(filter=pb.LoanFilter(states=states))  # type: ignore[arg-type]
        response = suite.loans.ListLoans(request, metadata=owner.metadata)
        assert response.HasField("page"), response.error
        return len(response.page.loans)

    assert listed([unknown]) == 0
    assert listed([pb.LOAN_STATE_UNSPECIFIED]) == 0
    assert listed([unknown, pb.LOAN_STATE_DRAFT]) == 1
    assert listed([]) == 1


def test_page_tokens_cannot_be_forged_or_reused_for_another_query(suite: Suite) -> None:
    owner = suite.register("BORROWER")
    for _ in range(3):
        new_loan(suite.loans, owner)
    token = suite.loans.ListLoans(
        pb.ListLoansRequest(page_size=1), metadata=owner.metadata
    ).page.next_page_token
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-3] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    other_filter = pb.LoanFilter(states=[pb.LOAN_STATE_DRAFT])

    attempts = [
        (owner, pb.ListLoansRequest(page_size=1, page_token=forged)),
        (owner, pb.ListLoansRequest(page_size=1, page_token=token, filter=other_filter)),
        (suite.register("BORROWER"), pb.ListLoansRequest(page_size=1, page_token=token)),
        (owner, pb.ListLoansRequest(page_size=-1)),
    ]
    for account, request in attempts:
        error = suite.loans.ListLoans(request, metadata=account.metadata).error
        assert error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    valid = suite.loans.ListLoans(
        pb.ListLoansRequest(page_size=1, page_token=token), metadata=owner.metadata
    )
    assert len(valid.page.loans) == 1
