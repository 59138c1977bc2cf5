"""One fuzzed call on the wire, and what the contract lets it answer.

Requests go out as raw bytes, so that a field can be repeated or a message
made undecodable. A unary call gets a generous deadline; a server stream is
opened, read for a moment and closed by its deadline; a bidirectional stream
sends its requests, half-closes and reads every answer. ``problems`` lists each
way an outcome breaks DESIGN §2: a status it does not allow, a capacity status
without the Error detail, ERROR_CODE_INTERNAL or a malformed envelope, or a
reply that leaks a stack trace, SQL or a path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from google.protobuf import text_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status
from loansuite.audit.v1 import audit_service_pb2
from loansuite.auth.v1 import auth_service_pb2
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2

from tests.fuzz.requests import Encoded

__all__ = ["RPCS", "Call", "Outcome", "Rpc", "invoke", "problems"]

UNARY_SECONDS: Final = 30.0  # far above any answer; reaching it means a call hung
STREAM_SECONDS: Final = 0.25  # "a moment" of a live stream
MODULES: Final = {"auth": auth_service_pb2, "loans": loan_service_pb2, "audit": audit_service_pb2}
_REASON = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")
# What only an unexpected failure would put in a reply.
_LEAKS: Final = ("Traceback", 'File "/', "sqlalchemy", "psycopg", "sqlite3", "/work/", '.py"')
# What grpcio itself answers for a request it cannot decode, before any handler runs.
_UNDECODABLE = (grpc.StatusCode.INTERNAL, "Exception deserializing request!")
_CAPACITY = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: error_pb2.ERROR_CODE_RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE: error_pb2.ERROR_CODE_UNAVAILABLE,
}


@dataclass(frozen=True)
class Rpc:
    """One method of one of the three services, as its descriptor declares it."""

    service: str  # auth, loans or audit: the server that answers it
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def response_type(self) -> type[Message]:
        return GetMessageClass(self.method.output_type)

    def __str__(self) -> str:
        return f"{self.method.containing_service.name}.{self.method.name}"


RPCS: Final = [
    Rpc(service, method)
    for service, module in MODULES.items()
    for declared in module.DESCRIPTOR.services_by_name.values()
    for method in declared.methods
]


@dataclass(frozen=True)
class Call:
    """A fuzzed call: its requests, who it claims to be, and its x-request-id."""

    rpc: Rpc
    requests: tuple[Encoded, ...]
    caller: str
    authorization: str | None
    request_id: str | None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = [("authorization", self.authorization), ("x-request-id", self.request_id)]
        return tuple((key, value) for key, value in pairs if value is not None)

    @property
    def transport_refuses(self) -> bool:
        return any(request.transport_refuses for request in self.requests)

    def __str__(self) -> str:
        """The call as a reader reproduces it: caller, metadata, each request in text format."""
        lines = [f"{self.rpc} as {self.caller}, x-request-id {self.request_id!r}"]
        for n, request in enumerate(self.requests):
            lines.append(f"request {n} ({request.variant}, {len(request.data)} bytes):")
            lines.append(_text(request.message))
            if request.extra is not None:
                lines += ["followed on the wire by:", _text(request.extra)]
        return "\n".join(lines)


def _text(message: Message) -> str:
    shown = text_format.MessageToString(message, as_utf8=True)
    return shown if len(shown) < 2000 else f"{shown[:2000]}… ({len(shown)} characters)"


@dataclass
class Outcome:
    """What came back: the responses read, and the status the call ended with."""

    responses: list[Message] = field(default_factory=list)
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""
    failure: grpc.RpcError | None = None

    @property
    def rejected(self) -> bool:
        """Nothing but refusals: envelope errors, or a status before any answer."""
        if self.code != grpc.StatusCode.OK and not self.responses:
            return self.code != grpc.StatusCode.DEADLINE_EXCEEDED
        return bool(self.responses) and all(_is_error(r) for r in self.responses)


def _is_error(response: Message) -> bool:
    return bool(response.WhichOneof("result") == "error")


def invoke(channel: grpc.Channel, call: Call) -> Outcome:
    """Make the call on channel; every status it ends with is in the outcome, never raised."""
    method, rpc = call.rpc.method, call.rpc
    decode = rpc.response_type.FromString
    payloads = [request.data for request in call.requests]
    outcome = Outcome()
    try:
        if method.client_streaming:
            answers: Iterable[Any] = channel.stream_stream(rpc.path, None, decode)(
                iter(payloads), metadata=call.metadata, timeout=UNARY_SECONDS
            )
        elif method.server_streaming:
            # A request the transport refuses never opens the stream: give its refusal (after
            # 4 MiB have crossed, for an oversized one) a unary call's time, not a moment's.
            seconds = UNARY_SECONDS if call.transport_refuses else STREAM_SECONDS
            answers = channel.unary_stream(rpc.path, None, decode)(
                payloads[0], metadata=call.metadata, timeout=seconds
            )
        else:
            unary = channel.unary_unary(rpc.path, None, decode)
            answers = iter([unary(payloads[0], metadata=call.metadata, timeout=UNARY_SECONDS)])
        for answer in answers:
            outcome.responses.append(answer)
    except grpc.RpcError as failure:
        outcome.code, outcome.details = failure.code(), failure.details() or ""
        outcome.failure = failure
    return outcome


def problems(call: Call, outcome: Outcome) -> list[str]:
    """Every way the outcome breaks the contract; empty when it holds."""
    found = _status_problems(call, outcome)
    for response in outcome.responses:
        found += _envelope_problems(response)
    return found


def _status_problems(call: Call, outcome: Outcome) -> list[str]:
    code = outcome.code
    if call.transport_refuses:
        # The size is checked before the bytes are decoded.
        oversized = any(request.oversized for request in call.requests)
        expected = grpc.StatusCode.RESOURCE_EXHAUSTED if oversized else _UNDECODABLE[0]
        # A stream's handler may refuse the caller before it reads the request it cannot decode.
        refused_first = call.rpc.method.client_streaming and outcome.rejected
        if code == expected or refused_first:
            return []
        return [f"the transport should refuse it, got {code}"]
    if code == grpc.StatusCode.OK:
        return []
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and call.rpc.method.server_streaming:
        return [] if not call.rpc.method.client_streaming else ["a half-closed stream hung"]
    if code in _CAPACITY:
        return _detail_problems(outcome, _CAPACITY[code])
    return [f"status {code.name} ({outcome.details!r}) is not one DESIGN allows"]


def _detail_problems(outcome: Outcome, expected: int) -> list[str]:
    status = rpc_status.from_call(outcome.failure) if outcome.failure is not None else None  # type: ignore[arg-type]
    errors = []
    for detail in status.details if status is not None else []:
        error = error_pb2.Error()
        if detail.Unpack(error):
            errors.append(error)
    if not errors:
        return [f"{outcome.code.name} ({outcome.details!r}) without the Error detail"]
    if errors[0].code != expected:
        return [f"{outcome.code.name} carries {error_pb2.ErrorCode.Name(errors[0].code)}"]
    return []


def _envelope_problems(response: Message) -> list[str]:
    if response.WhichOneof("result") is None:
        return [f"an envelope with neither payload nor error: {type(response).__name__}"]
    if not _is_error(response):
        return []
    error: error_pb2.Error = response.error  # type: ignore[attr-defined]
    found = []
    if error.code in (error_pb2.ERROR_CODE_INTERNAL, error_pb2.ERROR_CODE_UNSPECIFIED):
        found.append(
            f"envelope {error_pb2.ErrorCode.Name(error.code)} (request id {error.request_id})"
        )
    if not _REASON.fullmatch(error.reason) or not error.request_id:
        found.append(f"an Error without a reason or request id: {error}")
    shown = " ".join([error.message, *(v.description for v in error.field_violations)])
    found += [f"the reply leaks {leak!r}: {shown[:500]}" for leak in _LEAKS if leak in shown]
    return found
