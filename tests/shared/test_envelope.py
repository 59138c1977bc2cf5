"""The envelope at the edge of every RPC, served by grpc_testing: no network, no database."""

from __future__ import annotations

import logging
from collections import Counter

import grpc
import pytest
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from services.shared import errors
from services.shared.context import REQUEST_ID_HEADER
from services.shared.envelope import internal_error
from tests.shared.envelope_support import (
    PATIENCE,
    Metadata,
    ScriptedAudit,
    Step,
    call_tail,
    call_unary,
    outcomes,
    remaining,
)

APP_ERRORS = [
    kind()
    for kind in map(errors.__dict__.get, errors.__all__)
    if isinstance(kind, type) and issubclass(kind, errors.AppError)
    if kind not in (errors.AppError, errors.ValidationError)
    if not kind.as_status  # a status, not an envelope (tests/shared/test_commit_status.py)
]
INVALID_DATES = errors.ValidationError(
    [
        ("maturity_date", "MATURITY_NOT_AFTER_START", "must be after start_date"),
        ("currency_code", "CURRENCY_UNKNOWN", "is not an ISO 4217 code"),
    ]
)


@pytest.mark.parametrize("failure", [*APP_ERRORS, INVALID_DATES], ids=lambda e: type(e).__name__)
def test_each_app_error_becomes_its_envelope_error_with_status_ok(failure: errors.AppError) -> None:
    response, _, code = call_unary(ScriptedAudit(failure=failure), ((REQUEST_ID_HEADER, "req-7"),))

    assert code is grpc.StatusCode.OK
    assert response.error == error_pb2.Error(
        code=error_pb2.ErrorCode.Value(f"ERROR_CODE_{failure.code.name}"),
        reason=failure.reason,
        message=failure.message,
        field_violations=[
            error_pb2.FieldViolation(field=v.field, description=v.description)
            for v in failure.field_violations
        ],
        request_id="req-7",
    )


def test_an_unexpected_failure_is_internal_says_nothing_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="loansuite.rpc")
    before = outcomes("VerifyChain")

    response, trailing, code = call_unary(ScriptedAudit(failure=RuntimeError("password=hunter2")))

    assert code is grpc.StatusCode.OK
    assert (response.error.code, response.error.reason) == (
        error_pb2.ERROR_CODE_INTERNAL,
        "INTERNAL",
    )
    assert "hunter2" not in str(response)
    assert response.error.request_id == trailing[REQUEST_ID_HEADER] != ""
    assert outcomes("VerifyChain") - before == Counter(INTERNAL=1)
    logged = [r for r in caplog.records if r.getMessage() == "unexpected failure"]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["password=hunter2"]


@pytest.mark.parametrize("failure", [None, errors.NotFoundError()], ids=["answer", "error"])
def test_the_request_id_sent_is_echoed_in_the_trailing_metadata_and_the_error(
    failure: Exception | None,
) -> None:
    response, trailing, _ = call_unary(
        ScriptedAudit(failure=failure), ((REQUEST_ID_HEADER, "a-1"),)
    )

    assert trailing[REQUEST_ID_HEADER] == "a-1"
    assert response.error.request_id == ("" if failure is None else "a-1")


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 129, "semi;colon"])
def test_a_request_id_is_made_up_when_absent_or_unacceptable(sent: str | None) -> None:
    metadata: Metadata = () if sent is None else ((REQUEST_ID_HEADER, sent),)
    made_up = []
    for _ in range(2):
        response, trailing, _ = call_unary(ScriptedAudit(failure=errors.NotFoundError()), metadata)
        assert response.error.request_id == trailing[REQUEST_ID_HEADER]
        made_up.append(response.error.request_id)

    assert all(made_up)
    assert sent not in made_up
    assert made_up[0] != made_up[1]


@pytest.mark.parametrize(
    ("failure", "code_name", "reason", "message"),
    [
        (
            errors.NotFoundError("no such chain", reason="GONE"),
            "NOT_FOUND",
            "GONE",
            "no such chain",
        ),
        (RuntimeError("password=hunter2"), "INTERNAL", "INTERNAL", internal_error("").message),
    ],
    ids=["app-error", "unexpected"],
)
def test_an_error_ends_a_stream_with_one_last_error_response(
    failure: Exception, code_name: str, reason: str, message: str
) -> None:
    events = [pb.AuditEvent(event_id=f"e{n}") for n in range(3)]
    servicer = ScriptedAudit(stream=[events[0], events[1], failure, events[2]])

    rpc = call_tail(servicer, ((REQUEST_ID_HEADER, "tail-1"),))
    trailing, code, _ = rpc.termination()

    error = error_pb2.Error(
        code=error_pb2.ErrorCode.Value(f"ERROR_CODE_{code_name}"),
        reason=reason,
        message=message,
        request_id="tail-1",
    )
    assert code is grpc.StatusCode.OK
    assert dict(trailing)[REQUEST_ID_HEADER] == "tail-1"
    assert remaining(rpc) == [
        pb.TailAuditEventsResponse(event=events[0]),
        pb.TailAuditEventsResponse(event=events[1]),
        pb.TailAuditEventsResponse(error=error),
    ]


@pytest.mark.parametrize(
    "after_leaving",
    [[], [RuntimeError("read from a cancelled call")]],
    ids=["returns", "raises"],
)
def test_a_stream_the_client_cancels_ends_without_an_error_response(
    after_leaving: list[Step],
) -> None:
    servicer = ScriptedAudit(stream=[pb.AuditEvent(event_id="e0"), None, *after_leaving])
    rpc = call_tail(servicer)
    first = rpc.take_response()
    before = outcomes("_tail")

    rpc.cancel()

    assert servicer.over.wait(PATIENCE)
    assert first.event.event_id == "e0"
    assert remaining(rpc) == []
    assert outcomes("_tail") - before == Counter(CANCELLED=1)
