"""The loans service on grpcio's thread-pool server answers as on grpc.aio.

This module's suite runs on the thread pool (SERVER_MODEL), the model a deployment
picks with LOANSUITE_SERVER_MODEL=thread; every other suite runs on grpc.aio, the
default. The authorization matrix, the read rules, the keyed write, a failed group
commit (a real UNAVAILABLE status) and WatchLoans (ended by the subscriber, by its
token or by a stop) run again here, every call on a pool thread.
"""

from __future__ import annotations

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
from tests.support import Suite

SERVER_MODEL = "thread"


def test_the_suite_serves_on_the_thread_pool(suite: Suite) -> None:
    assert suite.settings.server_model == "thread"
