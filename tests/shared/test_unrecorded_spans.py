"""Spans when nothing is exported: unrecorded, with the ids and sampled flag the SDK's
default sampler would give, so log lines, audit events and the traceparent sent on
are the same as with a recording SDK.

The SDK the process would run is a TracerProvider with its defaults (what
configure_tracing installs); it is asked for the same span beside ours.
"""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.shared import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def unrecorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process exports nothing and keeps the default sampler."""
    monkeypatch.setattr(tracing, "_unrecorded", RandomIdGenerator())


def traceparent(flags: str) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{TRACE_ID}-{SENT_SPAN_ID}-{flags}"), ("tracestate", "k=v"))


def sdk_span(metadata: tuple[tuple[str, str], ...] | None) -> trace.Span:
    """The span the SDK with its defaults starts for the same call."""
    carrier = dict(metadata or ())
    parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
    return TracerProvider().get_tracer("tests").start_span("call", context=parent)


@pytest.mark.usefixtures("unrecorded")
@pytest.mark.parametrize(
    "metadata", [traceparent("01"), traceparent("03"), traceparent("00"), traceparent("02"), None]
)
def test_a_call_span_has_the_trace_and_flag_the_sdk_would_give(
    metadata: tuple[tuple[str, str], ...] | None,
) -> None:
    ours = tracing.start_call_span("loansuite.loans.v1.LoanService", "GetLoan", metadata)
    theirs = sdk_span(metadata).get_span_context()
    context = ours.span.get_span_context()

    assert not ours.span.is_recording()
    assert context.is_valid
    assert context.trace_flags == theirs.trace_flags
    assert context.trace_state == theirs.trace_state
    if metadata is None:
        assert context.trace_flags.sampled  # a new trace, sampled
        assert context.trace_id not in (theirs.trace_id, int(TRACE_ID, 16))
    else:
        assert context.trace_id == theirs.trace_id == int(TRACE_ID, 16)
    assert context.span_id not in (theirs.span_id, int(SENT_SPAN_ID, 16))

    token = ours.enter()
    try:
        assert tracing.current_ids() == (
            format(context.trace_id, "032x"),
            format(context.span_id, "016x"),
        )
    finally:
        ours.leave(token)
    ours.end("INTERNAL", ("INTERNAL", "INTERNAL"))  # nothing recorded, nothing raised
    assert tracing.current_ids() == ("", "")


@pytest.mark.usefixtures("unrecorded")
def test_a_linked_span_is_current_inside_and_a_child_of_the_current_span() -> None:
    origins = [tracing.Origin(TRACE_ID, SENT_SPAN_ID)]
    with tracing.linked_span("outbox deliver", origins, kind=SpanKind.PRODUCER) as root:
        assert tracing.current_ids()[1] == format(root.get_span_context().span_id, "016x")
        with tracing.linked_span("audit ingest", origins, kind=SpanKind.CONSUMER) as child:
            pass
    assert tracing.current_ids() == ("", "")

    assert root.get_span_context().trace_id != int(TRACE_ID, 16)  # links, not parents
    assert child.get_span_context().trace_id == root.get_span_context().trace_id
    assert child.get_span_context().span_id != root.get_span_context().span_id


@pytest.mark.usefixtures("unrecorded")
def test_a_span_started_inside_another_context_stays_in_its_trace() -> None:
    parent = tracing.start_call_span("s", "M", traceparent("01"))
    token = otel_context.attach(trace.set_span_in_context(parent.span))
    try:
        with tracing.linked_span("work", [], kind=SpanKind.INTERNAL) as inner:
            pass
    finally:
        otel_context.detach(token)
    assert inner.get_span_context().trace_id == int(TRACE_ID, 16)
