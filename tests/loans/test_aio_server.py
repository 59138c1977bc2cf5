"""The loans service on grpc.aio, the default: what its native handlers do of their own.

A read or a write whose caller is known runs on the event loop (a write suspended while
it waits for its group commit); a first call with a new token runs on the thread pool.
The request is decoded by the handler, not by grpc.aio. test_thread_server runs the
shared rules again on the thread pool.
"""

from __future__ import annotations

import grpc
import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.factories import get_loan, new_loan
from tests.support import Account, Suite


def test_the_suite_serves_on_grpc_aio(suite: Suite) -> None:
    assert suite.settings.server_model == "aio"


def test_a_read_by_a_new_token_and_again_by_the_same_one_answer_alike(
    suite: Suite, borrower: Account
) -> None:
    """The first read verifies the token on a thread; the next runs on the loop."""
    loan = new_loan(suite.loans, borrower)
    fresh = suite.register()
    outsider = get_loan(suite.loans, fresh, loan.id)  # its token is new to loans
    again = get_loan(suite.loans, fresh, loan.id)

    assert outsider.error.reason == again.error.reason == "LOAN_NOT_FOUND"
    assert get_loan(suite.loans, borrower, loan.id).loan == loan


def test_an_undecodable_request_is_refused_by_the_transport(
    suite: Suite, borrower: Account
) -> None:
    get = suite.channel("loans").unary_unary("/loansuite.loans.v1.LoanService/GetLoan", None, None)
    bad_utf8 = b"\x0a\x02\xff\xfe"  # loan_id (field 1) with bytes that are no UTF-8

    with pytest.raises(grpc.RpcError) as raised:
        get(bad_utf8, metadata=borrower.metadata, timeout=5)

    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "Exception deserializing request!"
    # The server goes on serving.
    assert get_loan(suite.loans, borrower, new_loan(suite.loans, borrower).id).HasField("loan")


def test_a_list_refuses_what_it_refuses_on_the_thread_pool(suite: Suite, borrower: Account) -> None:
    response = suite.loans.ListLoans(
        pb.ListLoansRequest(page_size=0, page_token="not-a-token"), metadata=borrower.metadata
    )
    assert response.error.reason == "PAGE_TOKEN_INVALID"
    assert "page_token" in response.error.message
