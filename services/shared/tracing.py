"""Traces: an OpenTelemetry span for every call served and made, W3C trace context.

Served calls get their SERVER span from the envelope decorators, which already
see every call with its outcome: a caller's ``traceparent`` (and ``tracestate``)
makes the span its child, the envelope's Error code and reason become span
attributes, and the same span works under both server models (grpc.aio's stock
interceptor awaits handlers, and ours are synchronous). Health and reflection
calls are not traced: probes every few seconds would drown the traces that matter.

Calls made to other services go through ``opentelemetry-instrumentation-grpc``'s
client interceptor (``traced``), which opens a CLIENT span and sends the context on.

An audit event remembers the span of the call that caused it (``origin``): the
relay's delivery and audit's ingest are traces of their own that link to it, as
OpenTelemetry models batches; a batch carries many events from many traces.

``configure_tracing`` installs the SDK when a service starts. Trace and span ids
are then made for every call, so log lines and audit events carry them, while
nothing leaves the process unless the standard variables ask. With no exporter
and the default sampler, a span would be recorded only to be dropped: the
process then makes its spans unrecorded (ids, parent, sampled flag, all as the
SDK would set them) at a fifth of the cost. The variables: ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``, ...; ``none`` by default), ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, and
``OTEL_SDK_DISABLED=true`` for no tracing at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Final

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import client_interceptor, grpcext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "CallSpan",
    "Origin",
    "SpanKind",
    "configure_tracing",
    "current_ids",
    "current_origin",
    "linked_span",
    "start_call_span",
    "traced",
]

_tracer = trace.get_tracer("loansuite")
# W3C trace context only: what every gRPC stack and proxy speaks. The global propagator
# would also be W3C by default, but OTEL_PROPAGATORS could make it read other headers.
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACE_HEADERS: Final = frozenset(_PROPAGATOR.fields)
_EXPORTER_GROUP: Final = "opentelemetry_traces_exporter"
_DEFAULT_SAMPLER: Final = "parentbased_always_on"
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)

# Set when nothing is exported and the sampler is the default: spans are then unrecorded.
_unrecorded: RandomIdGenerator | None = None


def configure_tracing(service: str) -> None:
    """Install the SDK for this process, exporting as the ``OTEL_*`` variables say."""
    global _unrecorded
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporters = _exporters(os.environ.get("OTEL_TRACES_EXPORTER", "none"))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", _DEFAULT_SAMPLER).strip().lower()
    _unrecorded = RandomIdGenerator() if not exporters and sampler == _DEFAULT_SAMPLER else None


def _start_span(
    name: str,
    parent: otel_context.Context | None,
    kind: SpanKind,
    attributes: Mapping[str, str | int],
    links: Sequence[Link] = (),
) -> Span:
    """A span from the SDK, or, when nothing would keep it, the unrecorded span the SDK
    makes for one its sampler drops: the parent's trace (or a new one), a new span id,
    and the sampled flag ``parentbased_always_on`` would give."""
    ids = _unrecorded
    if ids is None:
        return _tracer.start_span(
            name, context=parent, kind=kind, attributes=attributes, links=links
        )
    above = trace.get_current_span(parent).get_span_context()
    if above.is_valid:  # the caller's sampled flag stands, and so does its trace id's kind
        trace_id, state = above.trace_id, above.trace_state
        flags = above.trace_flags & (TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
    else:  # a new trace: sampled, its id random
        trace_id, state = ids.generate_trace_id(), None
        flags = _SAMPLED | (TraceFlags.RANDOM_TRACE_ID if ids.is_trace_id_random() else 0)
    own = SpanContext(trace_id, ids.generate_span_id(), False, TraceFlags(flags), state)
    return NonRecordingSpan(own)


def _exporters(names: str) -> list[SpanExporter]:
    """The exporters named (comma-separated), found by the SDK's entry points."""
    chosen = [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]
    exporters: list[SpanExporter] = []
    for name in chosen:
        found = entry_points(group=_EXPORTER_GROUP, name=name)
        if not found:
            known = sorted(e.name for e in entry_points(group=_EXPORTER_GROUP))
            raise ValueError(f"OTEL_TRACES_EXPORTER: no exporter {name!r} (known: {known})")
        exporters.append(next(iter(found)).load()())
    return exporters


def traced(channel: grpc.Channel) -> grpc.Channel:
    """The channel with a CLIENT span around each call and the trace context sent on."""
    interceptor = client_interceptor()  # type: ignore[no-untyped-call]
    intercepted: grpc.Channel = grpcext.intercept_channel(channel, interceptor)  # type: ignore[no-untyped-call]
    return intercepted


class CallSpan:
    """The SERVER span of one call being served; ``enter`` makes it current for a while."""

    __slots__ = ("_context", "span")

    def __init__(self, span: Span, context: otel_context.Context) -> None:
        self.span = span
        self._context = context

    def enter(self) -> object:
        """Make the span current (a log line or a downstream call sees it); give the token
        to ``leave``. A stream enters at each step, as its steps may run on any thread."""
        return otel_context.attach(self._context)

    @staticmethod
    def leave(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    def end(self, grpc_code: str, error: tuple[str, str] | None = None) -> None:
        """Record the outcome (the gRPC code; the Error's code and reason) and end the span."""
        span = self.span
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[grpc_code].value[0])
            if error is not None:
                span.set_attribute("loansuite.error.code", error[0])
                span.set_attribute("loansuite.error.reason", error[1])
            if grpc_code not in _CLIENT_CODES or (error is not None and error[0] == "INTERNAL"):
                span.set_status(Status(StatusCode.ERROR, error[0] if error else grpc_code))
        span.end()


# Outcomes that are the caller's doing; a SERVER span's status is unset for them (semconv).
_CLIENT_CODES: Final = frozenset(
    {
        "OK",
        "CANCELLED",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "FAILED_PRECONDITION",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "OUT_OF_RANGE",
    }
)


def start_call_span(
    service: str, method: str, metadata: Sequence[tuple[str, str | bytes]] | None
) -> CallSpan:
    """Start the SERVER span of a call: the child of the caller's traceparent if it sent one."""
    carrier = {k: v for k, v in metadata or () if k in _TRACE_HEADERS and isinstance(v, str)}
    parent = _PROPAGATOR.extract(carrier) if carrier else None
    span = _start_span(
        f"{service}/{method}",
        parent,
        SpanKind.SERVER,
        {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    )
    return CallSpan(span, trace.set_span_in_context(span, parent))


@contextmanager
def detached() -> Iterator[None]:
    """No current span: what starts inside begins a trace of its own."""
    token = otel_context.attach(otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)


def current_ids() -> tuple[str, str]:
    """The current trace and span ids in hex, for log lines; empty outside a trace."""
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return "", ""
    return format(found.trace_id, "032x"), format(found.span_id, "016x")


@dataclass(frozen=True)
class Origin:
    """The span of the call that caused an audit event, as the event carries it."""

    trace_id: str = ""  # 32 lowercase hex digits, or "" when the call was not traced
    span_id: str = ""  # 16 lowercase hex digits

    def link(self) -> Link | None:
        """A link to the span, when both ids are well-formed and not zero."""
        try:
            trace_id, span_id = int(self.trace_id, 16), int(self.span_id, 16)
        except ValueError:
            return None
        if len(self.trace_id) != 32 or len(self.span_id) != 16:
            return None
        linked = SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED)
        return Link(linked) if linked.is_valid else None


def current_origin() -> Origin:
    """The current span as the origin of an event recorded now."""
    return Origin(*current_ids())


@contextmanager
def linked_span(name: str, origins: Iterable[Origin], *, kind: SpanKind) -> Iterator[Span]:
    """A span that links to each distinct origin: a batch of events from many calls."""
    links = {link.context.span_id: link for o in origins if (link := o.link()) is not None}
    attributes = {"loansuite.linked_calls": len(links)}
    span = _start_span(name, None, kind, attributes, list(links.values()))
    with trace.use_span(
        span, end_on_exit=True, record_exception=True, set_status_on_exception=True
    ):
        yield span
