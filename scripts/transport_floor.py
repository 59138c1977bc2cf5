"""What the loans server stack costs for a call's messages alone, with no work behind them.

    .venv/bin/python scripts/transport_floor.py [--seconds 8] [--concurrency 16]

Starts a server process built as loans builds its own (``create_server``,
the default server model, each method where loans runs it: GetLoan on the
event loop, CreateLoan in a greenlet) whose CreateLoan and GetLoan answer at
once with a response made in advance, of the size the real ones have. The
same client as ``loansuite bench`` (16 threads, the benchmark's CreateLoan
request and a bearer token of a real one's length) calls Health/Check, then
GetLoan, then CreateLoan, and the server process's CPU per call is read from
/proc. The difference between these figures and ``loansuite bench``'s is
what the seven steps, the database and the relay cost; these are what any
handler would cost on this machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1 import loan_service_pb2_grpc as pb_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.bench import phases
from services.bench.suite import tree_cpu_seconds
from services.loans.models import etag_of
from services.loans.wiring import ON_THE_LOOP, SERVICE_NAME
from services.shared.aio_handlers import Placement
from services.shared.server import Registration, create_server


def _loan() -> pb.Loan:
    """A loan as CreateLoan and GetLoan give the benchmark's one back."""
    now = Timestamp()
    now.GetCurrentTime()
    loan_id = str(uuid.uuid4())
    loan = pb.Loan(
        id=loan_id,
        state=pb.LOAN_STATE_DRAFT,
        etag=etag_of("loan", loan_id, 1),
        borrower_organization_id=str(uuid.uuid4()),
        creator_user_id=str(uuid.uuid4()),
        create_time=now,
        update_time=now,
        reference_rate=pb.REFERENCE_RATE_FIXED,
        interest_period=pb.INTEREST_PERIOD_QUARTERLY,
        adjustment_cap_bps=500,
        adjustment_floor_bps=-500,
        outstanding_amount="0.00",
        reporting_grace_days=120,
    )
    terms = phases.create_loan_request("Bench loan 123456")  # the terms the benchmark sends
    for field, value in terms.ListFields():
        if field.name in pb.Loan.DESCRIPTOR.fields_by_name:  # not its request_id
            setattr(loan, field.name, value)
    return loan


def _answers() -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """CreateLoan and GetLoan, answered at once with responses made in advance."""
    loan = _loan()
    created, got = pb.CreateLoanResponse(loan=loan), pb.GetLoanResponse(loan=loan)
    return {
        "CreateLoan": grpc.unary_unary_rpc_method_handler(
            lambda request, context: created,
            request_deserializer=pb.CreateLoanRequest.FromString,
            response_serializer=pb.CreateLoanResponse.SerializeToString,
        ),
        "GetLoan": grpc.unary_unary_rpc_method_handler(
            lambda request, context: got,
            request_deserializer=pb.GetLoanRequest.FromString,
            response_serializer=pb.GetLoanResponse.SerializeToString,
        ),
    }


def _placement(method: str, _metadata: object) -> Placement:
    return ON_THE_LOOP.get(method, "pool")


def serve() -> None:
    """The server process: prints its port, serves until its standard input closes."""
    answers = _answers()
    registration = Registration(
        SERVICE_NAME,
        # As the generated add_LoanServiceServicer_to_server adds the service's methods.
        lambda s: s.add_registered_method_handlers(SERVICE_NAME, answers),
        _placement,
    )
    server = create_server([registration], "127.0.0.1:0")
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop(grace=1.0)


def _token() -> str:
    """A bearer token of a real one's length (the server reads none)."""
    claims: dict[str, str | int] = {"sub": str(uuid.uuid4()), "org": str(uuid.uuid4())}
    claims |= {"role": "BORROWER", "iss": "loansuite-auth", "aud": "loansuite"}
    claims |= {"iat": 0, "exp": 2**31, "jti": str(uuid.uuid4())}
    key = Ed25519PrivateKey.generate()
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k" * 43})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    assert server.stdin is not None
    port = int(server.stdout.readline())
    metadata = (("authorization", f"Bearer {_token()}"),)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.LoanServiceStub(channel)
            get = pb.GetLoanRequest(loan_id=str(uuid.uuid4()))

            def get_loan() -> None:
                stub.GetLoan(get, metadata=metadata, timeout=10)

            def create_loan() -> None:
                stub.CreateLoan(
                    phases.create_loan_request("Bench loan 123456"), metadata=metadata, timeout=10
                )

            calls = {
                "Health/Check": phases.health_call(channel),
                "GetLoan, answered at once": get_loan,
                "CreateLoan, answered at once": create_loan,
            }
            print(f"{'call':<30} {'rps':>8} {'server CPU per call':>20}")
            for name, call in calls.items():
                phases.run_phase(call, args.concurrency, 1.0)  # warm up
                measured = phases.measure(
                    lambda: tree_cpu_seconds({"server": server.pid}),
                    call,
                    args.concurrency,
                    args.seconds,
                )
                cpu = measured.cpu_ms_per_call["server"]
                print(f"{name:<30} {measured.rps:>8,.0f} {cpu:>17.3f} ms")
    finally:
        server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
