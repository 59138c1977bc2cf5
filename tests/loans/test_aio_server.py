"""The loans service on grpc.aio with native handlers answers as on the thread pool.

This module's suite runs on grpc.aio (SERVER_MODEL). The authorization matrix, the read
rules, the keyed write, a failed group commit (a real UNAVAILABLE status, raised on a
pool thread) and WatchLoans (ended by the subscriber, by its token or by a stop) run
again there: reads inline on the event loop once the caller is known, everything else
on the thread pool.
"""

from __future__ import annotations

import grpc
import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.factories import get_loan, new_loan
from tests.loans.test_authorization_matrix import (  # noqa: F401 - collected here as well
    people,
    test_each_caller_gets_what_the_matrix_says,
)
from tests.loans.test_create_loan import (  # noqa: F401
    test_a_retry_with_the_same_request_id_returns_the_original_loan_and_writes_once,
    test_invalid_input_is_an_envelope_error_naming_the_field_and_writes_nothing,
)
from tests.loans.test_reads import (  # noqa: F401
    test_a_committed_change_is_what_every_read_shows_next,
    test_a_page_of_kept_and_new_loans_keeps_the_newest_first_order,
    test_a_write_that_rolled_back_never_shows_in_a_read,
)
from tests.loans.test_watch import (  # noqa: F401
    test_a_change_that_rolled_back_is_never_announced,
    test_a_stream_ends_once_its_token_is_no_longer_valid,
    test_a_subscriber_hears_each_committed_change_with_the_new_etag,
    test_both_parties_hear_of_a_change_and_a_deletion_has_no_etag,
    test_no_subscriber_hears_of_another_organizations_loans,
    test_who_is_no_party_gets_one_error_and_the_stream_ends,
)
from tests.loans.test_watch_limits import (  # noqa: F401
    test_stopping_the_server_ends_its_streams_without_waiting_for_the_grace,
)
from tests.shared.test_commit_status import (  # noqa: F401
    test_a_commit_that_fails_answers_unavailable_with_the_error,
    test_the_next_write_after_a_failed_commit_succeeds,
)
from tests.support import Account, Suite

SERVER_MODEL = "aio"


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
