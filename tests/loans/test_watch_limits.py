"""WatchLoans under load and failure: bounded streams, slow subscribers, stops, replicas.

Every open stream holds a server worker thread, so the number of streams is
bounded, in the process and per user; a subscriber that falls behind is
dropped rather than waited for; a stopping server ends its streams at once; on
PostgreSQL every replica hears every commit, and a lost LISTEN connection ends
streams rather than lose changes silently.
"""

from __future__ import annotations

import threading

import grpc
import psycopg
import pytest
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.watching.pg_listener import APPLICATION_NAME
from services.loans.wiring import start as start_loans
from tests.loans.factories import new_loan
from tests.loans.watching import WAIT, Watch, Watches, replica, stub_of
from tests.support import POSTGRES, Suite


def test_watchers_beyond_the_process_limit_are_refused_until_one_leaves(
    suite: Suite, watches: Watches
) -> None:
    limit = suite.settings.max_workers // 2
    per_user = suite.settings.streams_per_user
    borrowers = [suite.register("BORROWER") for _ in range(-(-limit // per_user))]
    live = [
        watches.subscribe_retrying(suite.loans, borrowers[n // per_user], "TOO_MANY_WATCHERS")
        for n in range(limit)
    ]
    latecomer = suite.register("BORROWER")

    refused = watches.open(suite.loans, latecomer).refusal()
    live[0].call.cancel()
    replacement = watches.subscribe_retrying(suite.loans, latecomer, "TOO_MANY_WATCHERS")
    loan = new_loan(suite.loans, latecomer)

    assert refused[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (refused[1].code, refused[1].reason) == (
        error_pb2.ERROR_CODE_RESOURCE_EXHAUSTED,
        "TOO_MANY_WATCHERS",
    )
    assert replacement.change().loan_id == loan.id


def test_one_user_holds_at_most_its_share_and_other_organizations_still_watch(
    suite: Suite, watches: Watches
) -> None:
    """Idle streams of one borrower lock nobody else out; closing one frees its place."""
    borrower, lender = suite.register("BORROWER"), suite.register("LENDER")
    quota = suite.settings.streams_per_user
    live = [
        watches.subscribe_retrying(suite.loans, borrower, "STREAMS_PER_USER_EXHAUSTED")
        for _ in range(quota)
    ]

    refused = watches.open(suite.loans, borrower).refusal()
    other = watches.subscribe(suite.loans, lender)
    live[0].call.cancel()
    again = watches.subscribe_retrying(suite.loans, borrower, "STREAMS_PER_USER_EXHAUSTED")
    loan = new_loan(suite.loans, borrower, lender)

    status, error = refused
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (error.code, error.reason) == (
        error_pb2.ERROR_CODE_RESOURCE_EXHAUSTED,
        "STREAMS_PER_USER_EXHAUSTED",
    )
    assert error.request_id
    assert again.change().loan_id == loan.id
    assert other.change().loan_id == loan.id
    assert live[-1].change().loan_id == loan.id


def test_a_subscriber_that_falls_behind_is_dropped_while_writers_go_on(
    suite: Suite, watches: Watches
) -> None:
    """The client reads nothing; a tiny HTTP/2 window stops the server's sends at once."""
    borrower = suite.register("BORROWER")
    tiny_window = (("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0))
    with replica(suite, watch_queue_size=3) as server:
        slow_channel, slow_stub = stub_of(server.port, tiny_window)
        channel, stub = stub_of(server.port)
        slow = Watch(slow_stub.WatchLoans(pb.WatchLoansRequest(), metadata=borrower.metadata))
        assert slow.subscribed()
        loans = [new_loan(stub, borrower) for _ in range(60)]
        slow.start_reading()  # only now does the client read what was sent
        error = slow.error()
        slow_channel.close()
        channel.close()

    assert len(loans) == 60  # every write succeeded while the subscriber lagged
    assert (error.code, error.reason) == (
        error_pb2.ERROR_CODE_RESOURCE_EXHAUSTED,
        "SUBSCRIBER_TOO_SLOW",
    )


def test_stopping_the_server_ends_its_streams_without_waiting_for_the_grace(
    suite: Suite, watches: Watches
) -> None:
    borrower = suite.register("BORROWER")
    server = start_loans(suite.settings, port=0)
    channel, stub = stub_of(server.port)
    watch = watches.subscribe(stub, borrower)
    stopping = threading.Thread(target=server.stop, args=(60.0,))

    stopping.start()
    status, error = watch.refusal()
    stopping.join(WAIT)
    channel.close()

    # A real UNAVAILABLE, so that clients' retry logic reconnects (to another replica).
    assert status == grpc.StatusCode.UNAVAILABLE
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAVAILABLE, "SERVER_STOPPING")
    assert not stopping.is_alive(), "stop waited for the stream's grace period"


def test_every_replica_hears_every_commit(suite: Suite, watches: Watches) -> None:
    if suite.backend != "postgresql":
        pytest.skip("SQLite runs one process per database; there are no replicas to reach")
    borrower = suite.register("BORROWER")
    with replica(suite) as other:
        channel, other_stub = stub_of(other.port)
        here = watches.subscribe(suite.loans, borrower)
        there = watches.subscribe(other_stub, borrower)

        written_here = new_loan(suite.loans, borrower)
        written_there = new_loan(other_stub, borrower)

        heard = [(w.change().loan_id, w.change().loan_id) for w in (here, there)]
        channel.close()

    assert heard == [(written_here.id, written_there.id)] * 2


def test_a_lost_listener_connection_ends_streams_then_recovers(
    suite: Suite, watches: Watches
) -> None:
    if suite.backend != "postgresql":
        pytest.skip("only PostgreSQL feeds the bus through a connection that can drop")
    borrower = suite.register("BORROWER")
    watch = watches.subscribe(suite.loans, borrower)

    terminate_listeners(suite)
    error = watch.error()
    resumed = watches.subscribe_retrying(suite.loans, borrower, "CHANGE_FEED_INTERRUPTED")
    loan = new_loan(suite.loans, borrower)

    assert (error.code, error.reason) == (
        error_pb2.ERROR_CODE_UNAVAILABLE,
        "CHANGE_FEED_INTERRUPTED",
    )
    assert resumed.change().loan_id == loan.id


def terminate_listeners(suite: Suite) -> None:
    database = suite.settings.database_url("loans").rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES.admin_dsn, autocommit=True) as conn:
        terminated = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = %s",
            (APPLICATION_NAME, database),
        ).fetchall()
    assert terminated == [(True,)]
