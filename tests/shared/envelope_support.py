"""Support for the envelope tests: a scripted servicer served by grpc_testing, and its calls."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc_testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1.audit_service_pb2_grpc import AuditServiceServicer

from services.shared.envelope import streaming, unary
from services.shared.identity import Authenticator, Caller, Role
from services.shared.metrics import calls

SERVICE = pb.DESCRIPTOR.services_by_name["AuditService"]
# Only a safety net: a call that never ends fails with DEADLINE_EXCEEDED instead of hanging.
PATIENCE = 30.0
ISSUER, AUDIENCE, KID = "loansuite-auth", "loansuite", "key-1"
SIGNING_KEY = Ed25519PrivateKey.generate()
CALLER = Caller(user_id="user-1", organization_id="org-1", role=Role.LENDER)
Metadata = tuple[tuple[str, str], ...]


# A step of a scripted stream: send an event, raise, or (None) wait for the client to cancel.
Step = pb.AuditEvent | Exception | None


class Script(Iterator[pb.TailAuditEventsResponse]):
    """A scripted stream as a plain iterator: unlike a generator, it goes on after raising."""

    def __init__(self, steps: Iterator[Step], client_left: threading.Event) -> None:
        self._steps = steps
        self._client_left = client_left

    def __next__(self) -> pb.TailAuditEventsResponse:
        step = next(self._steps)
        if step is None:
            self._client_left.wait(PATIENCE)
            return next(self)
        if isinstance(step, Exception):
            raise step
        return pb.TailAuditEventsResponse(event=step)


@dataclass
class ScriptedAudit(AuditServiceServicer):
    """Each RPC does what the test scripted: answer, raise, or authenticate the caller."""

    failure: Exception | None = None
    stream: Sequence[Step] = ()
    authenticator: Authenticator | None = None
    client_left: threading.Event = field(default_factory=threading.Event)
    over: threading.Event = field(default_factory=threading.Event)

    @unary(pb.VerifyChainResponse)
    def VerifyChain(
        self, request: pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> pb.VerifyChainResponse:
        """Fail as scripted, else report an intact chain."""
        if self.failure is not None:
            raise self.failure
        return pb.VerifyChainResponse(verification=pb.ChainVerification(intact=True))

    @unary(pb.ListAuditEventsResponse)
    def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        """One event whose actor is the authenticated caller."""
        assert self.authenticator is not None
        caller = self.authenticator.authenticate(context.invocation_metadata())
        actor = pb.Actor(user_id=caller.user_id, organization_id=caller.organization_id)
        return pb.ListAuditEventsResponse(
            page=pb.AuditEventPage(events=[pb.AuditEvent(actor=actor)])
        )

    def TailAuditEvents(
        self, request: pb.TailAuditEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.TailAuditEventsResponse]:
        """The scripted stream, marking its end: grpc_testing tells nothing of a cancelled call."""
        try:
            yield from self._tail(request, context)
        finally:
            self.over.set()

    def IngestEvents(
        self, request_iterator: Iterator[pb.IngestEventsRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.IngestEventsResponse]:
        """Acknowledges nothing: these tests send no events (tests/audit serves ingest for real)."""
        return iter(())

    @streaming(pb.TailAuditEventsResponse)
    def _tail(
        self, request: pb.TailAuditEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.TailAuditEventsResponse]:
        context.add_callback(self.client_left.set)
        return Script(iter(self.stream), self.client_left)


def serve(servicer: ScriptedAudit) -> Any:
    return grpc_testing.server_from_dictionary({SERVICE: servicer}, grpc_testing.strict_real_time())


def call_unary(
    servicer: ScriptedAudit, metadata: Metadata = (), method: str = "VerifyChain"
) -> tuple[Any, dict[str, str], grpc.StatusCode]:
    """Call a unary method with an empty request: the response, trailing metadata and status."""
    descriptor = SERVICE.methods_by_name[method]
    request = getattr(pb, descriptor.input_type.name)()
    rpc = serve(servicer).invoke_unary_unary(descriptor, metadata, request, PATIENCE)
    response, trailing, code, _ = rpc.termination()
    return response, dict(trailing), code


def call_tail(servicer: ScriptedAudit, metadata: Metadata = ()) -> Any:
    descriptor = SERVICE.methods_by_name["TailAuditEvents"]
    request = pb.TailAuditEventsRequest()
    return serve(servicer).invoke_unary_stream(descriptor, metadata, request, PATIENCE)


def remaining(rpc: Any) -> list[Any]:
    """The responses not yet taken from a call that has ended."""
    taken = []
    while True:
        try:
            taken.append(rpc.take_response())
        except ValueError:  # grpc_testing's word for "ended, and nothing left"
            return taken


def outcomes(method: str) -> Counter[str]:
    """The calls of one method counted so far, by outcome."""
    counts = calls.snapshot().items()
    return Counter(
        {outcome: n for (name, outcome), n in counts if name == f"ScriptedAudit.{method}"}
    )
