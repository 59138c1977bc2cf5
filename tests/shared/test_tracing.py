"""Traces: one trace from a client through loans and auth, and audit's ingest linked to it.

The suite runs in this process, so every service's spans land in one in-memory exporter.
A tracer provider can be installed once per process; this module installs it for the
rest of the run, and its exporter stops keeping spans when the module is done.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence

import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.loans.v1 import loan_service_pb2 as pb
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.shared import tracing
from services.shared.logs import JsonFormatter
from tests.loans.factories import loan_request
from tests.support import Suite, eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.fail("another tracer provider was installed earlier in this process")
    yield exporter
    exporter.shutdown()  # later spans are dropped, not kept for the rest of the run


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def parent_span_id(span: ReadableSpan) -> str:
    return "" if span.parent is None else format(span.parent.span_id, "016x")


def named(spans: Sequence[ReadableSpan], name: str, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and s.kind == kind]


def linked_span_ids(span: ReadableSpan) -> set[str]:
    return {format(link.context.span_id, "016x") for link in span.links}


def test_one_trace_runs_from_the_client_through_loans_and_auth_to_the_audit_ingest(
    suite: Suite, spans: InMemorySpanExporter
) -> None:
    borrower = suite.register()  # unknown to loans until now: loans must ask auth
    spans.clear()

    metadata = (*borrower.metadata, ("traceparent", TRACEPARENT))
    created = suite.loans.CreateLoan(loan_request(), metadata=metadata)
    assert created.HasField("loan"), created.error

    def audited() -> list[audit_pb.AuditEvent]:
        listed = suite.audit.ListAuditEvents(
            audit_pb.ListAuditEventsRequest(
                filter=audit_pb.AuditEventFilter(resource_type="loan", action="LOAN_CREATED"),
                page_size=100,
            ),
            metadata=borrower.metadata,
        )
        assert listed.HasField("page"), listed.error
        return [e for e in listed.page.events if e.resource_id == created.loan.id]

    eventually(lambda: bool(audited()), "the LOAN_CREATED event is in the audit log")
    [create] = named(
        spans.get_finished_spans(), "loansuite.loans.v1.LoanService/CreateLoan", SpanKind.SERVER
    )
    create_trace, create_span = hex_ids(create)

    def linked(name: str, kind: SpanKind) -> list[ReadableSpan]:
        return [
            s
            for s in named(spans.get_finished_spans(), name, kind)
            if create_span in linked_span_ids(s)
        ]

    # The relay's span ends when audit's reply reaches it, after audit's own spans have ended.
    eventually(
        lambda: (
            bool(linked("loans outbox deliver", SpanKind.PRODUCER))
            and bool(linked("audit ingest", SpanKind.CONSUMER))
        ),
        "the relay's delivery and audit's ingest spans have ended",
    )
    finished = spans.get_finished_spans()

    # loans served the call as the child of the client's span, in the client's trace.
    assert create_trace == TRACE_ID
    assert parent_span_id(create) == CLIENT_SPAN_ID
    assert create.attributes is not None
    assert create.attributes["rpc.grpc.status_code"] == 0
    assert "loansuite.error.code" not in create.attributes

    # loans asked auth for the user: a CLIENT span under CreateLoan, auth's SERVER span under it.
    asked = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT
        and s.name.endswith("loansuite.auth.v1.AuthService/GetUser")
        and parent_span_id(s) == create_span
    ]
    assert len(asked) == 1, [s.name for s in finished]
    [get_user] = [
        s
        for s in named(finished, "loansuite.auth.v1.AuthService/GetUser", SpanKind.SERVER)
        if parent_span_id(s) == hex_ids(asked[0])[1]
    ]
    assert hex_ids(get_user)[0] == TRACE_ID

    # The event remembers the call that caused it ...
    [event] = audited()
    assert (event.trace_id, event.span_id) == (TRACE_ID, create_span)

    # ... and the relay's delivery and audit's ingest of it link back to that call.
    deliveries = linked("loans outbox deliver", SpanKind.PRODUCER)
    ingests = linked("audit ingest", SpanKind.CONSUMER)
    assert {format(link.context.trace_id, "032x") for link in ingests[0].links} >= {TRACE_ID}

    # The ingest ran inside an IngestEvents call. That call carries batch after batch, so
    # it is a trace of its own, neither the client's nor any one delivery's; it ends once
    # the relay has nothing left to send.
    def ingest_calls() -> list[ReadableSpan]:
        return [
            s
            for s in named(
                spans.get_finished_spans(),
                "loansuite.audit.v1.AuditService/IngestEvents",
                SpanKind.SERVER,
            )
            if hex_ids(s)[1] == parent_span_id(ingests[0])
        ]

    eventually(lambda: bool(ingest_calls()), "the IngestEvents call has ended")
    [ingest_call] = ingest_calls()
    assert hex_ids(ingest_call)[0] not in {TRACE_ID, hex_ids(deliveries[0])[0]}


def test_an_envelope_error_is_on_the_span_and_a_call_without_traceparent_starts_a_trace(
    suite: Suite, spans: InMemorySpanExporter
) -> None:
    borrower = suite.register()
    spans.clear()

    refused = suite.loans.GetLoan(
        pb.GetLoanRequest(loan_id="7d0f7f6e-0000-4000-8000-000000000000"),
        metadata=borrower.metadata,
    )
    assert refused.error.reason == "LOAN_NOT_FOUND"

    [span] = named(
        spans.get_finished_spans(), "loansuite.loans.v1.LoanService/GetLoan", SpanKind.SERVER
    )
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes["loansuite.error.code"] == "NOT_FOUND"
    assert span.attributes["loansuite.error.reason"] == "LOAN_NOT_FOUND"
    assert span.status.status_code is StatusCode.UNSET  # the caller's doing, not a fault


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # an all-zero trace id
        f"00-{TRACE_ID.upper()}-{CLIENT_SPAN_ID}-01",  # W3C demands lowercase
        f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01-more",  # version 00 has four fields
    ],
)
def test_a_malformed_traceparent_is_ignored_and_the_call_served(
    suite: Suite, spans: InMemorySpanExporter, traceparent: str
) -> None:
    borrower = suite.register()
    spans.clear()

    listed = suite.loans.ListLoans(
        pb.ListLoansRequest(), metadata=(*borrower.metadata, ("traceparent", traceparent))
    )

    assert listed.HasField("page"), listed.error
    [span] = named(
        spans.get_finished_spans(), "loansuite.loans.v1.LoanService/ListLoans", SpanKind.SERVER
    )
    assert span.parent is None
    assert hex_ids(span)[0] != TRACE_ID


def test_log_lines_carry_the_trace_and_span_of_the_current_span(
    spans: InMemorySpanExporter,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    try:
        with trace.get_tracer("tests").start_as_current_span("work") as span:
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside
    assert "span_id" not in outside


def test_origins_link_only_when_well_formed() -> None:
    assert tracing.Origin(TRACE_ID, CLIENT_SPAN_ID).link() is not None
    assert tracing.Origin().link() is None
    assert tracing.Origin(TRACE_ID, "").link() is None
    assert tracing.Origin("0" * 32, CLIENT_SPAN_ID).link() is None
    assert tracing.Origin(TRACE_ID, "zz" * 8).link() is None
    assert tracing.Origin(TRACE_ID + "00", CLIENT_SPAN_ID).link() is None
