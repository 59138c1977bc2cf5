"""WatchLoans streams read in the background, second replicas, and stubs on their ports."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from grpc_status import rpc_status
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1.loan_service_pb2_grpc import LoanServiceStub

from services.loans.watching.rpc import SUBSCRIBED
from services.loans.wiring import start as start_loans
from services.shared.server import Server
from tests.support import Account, Suite

WAIT = 10.0  # bounded waits: a change is due within a second of its commit


@dataclass
class Watch:
    """An open WatchLoans stream, read by a background thread into a queue."""

    call: grpc.CallIterator[pb.WatchLoansResponse]
    responses: queue.Queue[pb.WatchLoansResponse | None] = field(default_factory=queue.Queue)
    status: grpc.RpcError | None = None  # how the call ended, if not with status OK

    def start_reading(self) -> None:
        """Read the stream into the queue in a background thread."""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError as exc:  # cancelled by the test, or refused with a status
            self.status = exc
        self.responses.put(None)  # the stream ended

    def subscribed(self) -> bool:
        """Whether the server took the stream on: changes committed from now on reach it."""
        return SUBSCRIBED in tuple(self.call.initial_metadata())

    def next(self) -> pb.WatchLoansResponse | None:
        """The next response; None when the stream ended."""
        return self.responses.get(timeout=WAIT)

    def change(self) -> pb.LoanChange:
        """The next response, which must be a change."""
        response = self.next()
        assert response is not None, "the stream ended"
        assert response.HasField("change"), response.error
        return response.change

    def refusal(self) -> tuple[grpc.StatusCode, error_pb2.Error]:
        """The call's end without a change: its gRPC status and Error (envelope or detail)."""
        response = self.next()
        assert response is None or response.HasField("error"), response
        if response is not None:
            assert self.next() is None, "the stream went on after its error"
            return grpc.StatusCode.OK, response.error
        assert self.status is not None, "the stream ended without an error"
        return self.status.code(), status_error(self.call)

    def error(self) -> error_pb2.Error:
        """The stream's last response, an error, followed by its end."""
        response = self.next()
        while response is not None and response.HasField("change"):
            response = self.next()
        assert response is not None, "the stream ended without an error"
        assert self.next() is None, "the stream went on after its error"
        return response.error


class Watches:
    """Opens streams and cancels them all at the end of the test."""

    def __init__(self) -> None:
        self._open: list[Watch] = []

    def open(self, stub: LoanServiceStub, account: Account | None) -> Watch:
        """A stream opened as account (None: without a token), read in the background."""
        metadata = () if account is None else account.metadata
        watch = Watch(stub.WatchLoans(pb.WatchLoansRequest(), metadata=metadata))
        self._open.append(watch)
        watch.start_reading()
        return watch

    def subscribe(self, stub: LoanServiceStub, account: Account) -> Watch:
        """A stream that is live: changes committed from now on reach it."""
        watch = self.open(stub, account)
        if not watch.subscribed():
            raise AssertionError(f"not subscribed: {watch.error()}")
        return watch

    def subscribe_retrying(self, stub: LoanServiceStub, account: Account, reason: str) -> Watch:
        """Subscribe, retrying (bounded) while the server answers the transient error reason."""
        for _ in range(100):
            watch = self.open(stub, account)
            if watch.subscribed():
                return watch
            _, error = watch.refusal()
            assert error.reason == reason, error
            threading.Event().wait(0.1)
        raise AssertionError(f"still {reason} after 100 attempts")

    def cancel_all(self) -> None:
        """Cancel every stream this opened."""
        for watch in self._open:
            watch.call.cancel()


@contextlib.contextmanager
def replica(suite: Suite, **options: int) -> Iterator[Server]:
    """Another loans server over the same database, as a second replica would be."""
    server = start_loans(suite.settings, port=0, today=suite.today, **options)
    try:
        yield server
    finally:
        server.stop(0)


def stub_of(
    port: int, options: tuple[tuple[str, int], ...] = ()
) -> tuple[grpc.Channel, LoanServiceStub]:
    """A channel to a server on this machine, and a loan service stub on it."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    return channel, LoanServiceStub(channel)


def status_error(call: grpc.Call) -> error_pb2.Error:
    """The Error a call that ended with a status carries as its google.rpc.Status detail."""
    status = rpc_status.from_call(call)
    assert status is not None, "the status carries no details"
    error = error_pb2.Error()
    assert status.details[0].Unpack(error), status.details
    return error


def kind(change: pb.LoanChange) -> str:
    """The change's kind by its proto name."""
    return pb.ChangeKind.Name(change.kind)
