"""Microseconds per piece of the path every call shares, measured in-process.

    .venv/bin/python scripts/call_path.py

Each piece runs alone in a loop on one thread (no gRPC, no contention), so
the figures are what the piece itself costs; docs/BENCHMARKS.md puts them
next to a whole call's CPU from `loansuite bench`.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loansuite.loans.v1 import loan_service_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.loans.loan import queries
from services.loans.loan.conversions import loan_form, loan_to_proto
from services.loans.loan.schemas import parse_new_loan
from services.loans.loan.use_cases import create_loan
from services.shared import context, tracing
from services.shared.call_metrics import for_method
from services.shared.db import Database
from services.shared.envelope import unary
from services.shared.identity import (
    Authenticator,
    CachedKeyRing,
    Caller,
    Role,
    TokenVerifier,
)
from services.shared.logs import BatchedHandler, JsonFormatter, log_call
from services.shared.migrations import upgrade

CALLER = Caller(user_id=str(uuid.uuid4()), organization_id=str(uuid.uuid4()), role=Role.BORROWER)


class _Users:
    """The user directory after its cache is warm: the profile is at hand."""

    def load(self, user_id: str) -> Caller:
        return CALLER


class _Context:
    """What the envelope reads of a grpc.ServicerContext, and nothing more."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass


def per_call_us(piece: Callable[[], object], seconds: float = 0.5) -> float:
    """Microseconds per call of piece, the best of three runs."""
    number = max(100, int(seconds / max(timeit.timeit(piece, number=50) / 50, 1e-7)))
    return min(timeit.repeat(piece, number=number, repeat=3)) / number * 1e6


def main() -> None:
    key = Ed25519PrivateKey.generate()
    token = jwt.encode(
        {"sub": CALLER.user_id, "org": CALLER.organization_id, "role": "BORROWER",
         "iss": "i", "aud": "a", "iat": int(time.time()), "exp": int(time.time()) + 3600},
        key, algorithm="EdDSA", headers={"kid": "k1"},
    )  # fmt: skip
    metadata = (("authorization", f"Bearer {token}"),)
    verifier = TokenVerifier(
        CachedKeyRing(lambda: {"k1": key.public_key()}), issuer="i", audience="a"
    )
    authenticator = Authenticator(verifier, _Users())
    authenticator.authenticate(metadata)  # the token is verified once, then cached

    tracing.configure_tracing("loans")  # as `loansuite serve`: ids made, nothing exported
    logger = logging.getLogger("call-path")
    handler = BatchedHandler(open("/dev/null", "w"))  # noqa: SIM115 - lives with the process
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/loans.db")
        upgrade(db, "services.loans:migrations")
        request = pb.CreateLoanRequest(
            name="Solar Park", loan_type=pb.LOAN_TYPE_FIXED_RATE, currency_code="EUR",
            principal_amount="1250000.00", start_date="2027-01-01", maturity_date="2032-01-01",
        )  # fmt: skip
        new_loan = parse_new_loan(**loan_form(request))
        loan = db.submit(lambda session: create_loan(session, caller=CALLER, new_loan=new_loan))
        with db.reading() as connection:
            row = queries.find_loan(connection, caller=CALLER, loan_id=loan.id)

        class Echo:
            @unary(pb.GetLoanResponse)
            def GetLoan(self, request: pb.GetLoanRequest, ctx: Any) -> pb.GetLoanResponse:
                return pb.GetLoanResponse()

        echo, empty = Echo(), pb.GetLoanRequest()
        ctx = cast(grpc.ServicerContext, _Context(metadata))

        def read_version() -> object:
            with db.reading() as connection:
                return queries.find_loan_version(connection, caller=CALLER, loan_id=loan.id)

        def read_row() -> object:
            with db.reading() as connection:
                return queries.find_loan(connection, caller=CALLER, loan_id=loan.id)

        def read_orm() -> object:
            with db.read() as session:
                from services.loans.loan.use_cases import get_loan

                return get_loan(session, caller=CALLER, loan_id=loan.id)

        def span() -> None:
            call = tracing.start_call_span("loansuite.loans.v1.LoanService", "GetLoan", metadata)
            token = call.enter()
            call.end("OK")
            call.leave(token)

        def count(servicer: Echo) -> None:
            rpc = for_method(servicer, Echo.GetLoan, "unary")
            rpc.started()
            rpc.handled("OK", 0.0003, None)

        pieces: dict[str, Callable[[], object]] = {
            "request id (made up)": lambda: context.request_id_from(metadata),
            "authenticate (token and user cached)": lambda: authenticator.authenticate(metadata),
            "envelope @unary around an empty method": lambda: echo.GetLoan(empty, ctx),
            "metrics: count the call (started, handled, its time)": lambda: count(echo),
            "trace: the call's span (nothing exported: unrecorded, ids made)": span,
            "access log line (put together directly, batched)": lambda: log_call(
                logger, logging.INFO, "loansuite.loans.v1.LoanService/GetLoan", "OK", 0.3
            ),
            "the same line through logging's record and formatter": lambda: logger.info(
                "call", extra={"rpc": "LoanServicer.GetLoan", "outcome": "OK", "elapsed_ms": 0.3}
            ),
            "GetLoan query: the loan's version (on the driver's cursor)": read_version,
            "the loan in full (on the driver's cursor), when not kept": read_row,
            "GetLoan through an ORM Session": read_orm,
            "loan_to_proto (row)": lambda: loan_to_proto(row),
            "GetLoanResponse serialized": lambda: pb.GetLoanResponse(
                loan=loan_to_proto(row)
            ).SerializeToString(),
            "CreateLoan validation (form + pydantic)": lambda: parse_new_loan(**loan_form(request)),
        }
        logging.getLogger("loansuite").setLevel(logging.WARNING)  # the envelope's own line off
        for name, piece in pieces.items():
            print(f"{per_call_us(piece):8.1f} µs  {name}")
        db.dispose()


if __name__ == "__main__":
    main()
