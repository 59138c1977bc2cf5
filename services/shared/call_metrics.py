"""Per-call series with the gRPC ecosystem's names, fed by the envelope decorators.

The decorators already see each call's outcome, so no interceptor runs: a call
costs one counter at its start, then one counter (two for an error) and one
histogram observation at its end, on label children resolved once per method
and outcome (``.labels()`` itself is slow). Because the domain answers with
status OK, ``grpc_server_handled_total`` says OK for an envelope error; every
``loansuite.common.v1.Error`` answered, in an envelope or as a status detail,
is also counted in ``loansuite_envelope_errors_total`` by code and reason, so an
error is never counted only as a success.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

import prometheus_client as prom

__all__ = ["CallCounter", "CallMetrics", "GrpcType", "Outcome", "calls", "for_method"]

# Created-time series double every counter's lines, and no gRPC dashboard reads them.
prom.disable_created_metrics()  # type: ignore[no-untyped-call]

GrpcType = Literal["unary", "server_stream", "bidi_stream"]
_CALL_LABELS = ("grpc_type", "grpc_service", "grpc_method")

_STARTED = prom.Counter("grpc_server_started_total", "RPCs started on the server.", _CALL_LABELS)
_HANDLED = prom.Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by gRPC status code (an envelope error is OK here).",
    (*_CALL_LABELS, "grpc_code"),
)
_HANDLING = prom.Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of a call to its answer (the whole stream for streams).",
    _CALL_LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_ERRORS = prom.Counter(
    "loansuite_envelope_errors_total",
    "loansuite.common.v1.Error answers, in the envelope or as a status detail.",
    ("grpc_method", "code", "reason"),
)

# (gRPC code, (envelope code, reason) or None): what one finished call came to.
Outcome = tuple[str, tuple[str, str] | None]


class CallMetrics:
    """One RPC method's series, with its label children resolved once."""

    def __init__(self, name: str, grpc_type: GrpcType, service: str, method: str) -> None:
        self.name = name  # as the log line names the call: LoanServicer.CreateLoan
        self.service, self.method = service, method  # loansuite.loans.v1.LoanService, CreateLoan
        self._labels = (grpc_type, service, method)
        self._started = _STARTED.labels(*self._labels)
        self._handling = _HANDLING.labels(*self._labels)
        self._outcomes: dict[Outcome, tuple[Any, Any]] = {}

    def started(self) -> None:
        self._started.inc()

    def handled(self, grpc_code: str, seconds: float, error: tuple[str, str] | None) -> None:
        """Count a finished call: its gRPC code, the Error's code and reason if any, its time."""
        key = (grpc_code, error)
        children = self._outcomes.get(key) or self._resolve(key)
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        self._handling.observe(seconds)

    def _resolve(self, key: Outcome) -> tuple[Any, Any]:
        # A race resolves the same children twice: .labels() returns one child per labels.
        grpc_code, error = key
        handled = _HANDLED.labels(*self._labels, grpc_code)
        counted = None if error is None else _ERRORS.labels(self._labels[2], *error)
        self._outcomes[key] = (handled, counted)
        return handled, counted

    def counts(self) -> dict[str, int]:
        """Finished calls by outcome: the Error's code, else the gRPC code (OK, CANCELLED)."""
        by_outcome: dict[str, int] = {}
        errors_by_grpc_code: dict[str, int] = {}
        for (grpc_code, error), (_, counted) in list(self._outcomes.items()):
            if error is not None:
                value = _value(counted)
                by_outcome[error[0]] = by_outcome.get(error[0], 0) + value
                errors_by_grpc_code[grpc_code] = errors_by_grpc_code.get(grpc_code, 0) + value
        for (grpc_code, error), (handled, _) in list(self._outcomes.items()):
            if error is None:
                by_outcome[grpc_code] = _value(handled) - errors_by_grpc_code.get(grpc_code, 0)
        return by_outcome


def _value(child: Any) -> int:
    return int(next(s.value for m in child.collect() for s in m.samples))


class CallCounter:
    """The calls of this process by (servicer.method, outcome), read from the series."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._methods: dict[tuple[type, str], CallMetrics] = {}

    def for_method(
        self, servicer: object, method: Callable[..., object], kind: GrpcType
    ) -> CallMetrics:
        """The series of servicer's method, made on its first call."""
        key = (type(servicer), method.__name__)
        found = self._methods.get(key)
        if found is None:
            with self._lock:
                found = self._methods.get(key)
                if found is None:
                    found = _call_metrics(servicer, method.__name__, kind)
                    self._methods[key] = found
        return found

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            methods = list(self._methods.values())
        return {(m.name, outcome): n for m in methods for outcome, n in m.counts().items() if n}


def _call_metrics(servicer: object, method: str, kind: GrpcType) -> CallMetrics:
    """Series named after the proto service the servicer implements (e.g. loansuite.loans.v1
    .LoanService), found among its bases: the generated <Service>Servicer class."""
    service = type(servicer).__name__
    for base in type(servicer).__mro__:
        module = base.__module__
        if module.endswith("_pb2_grpc") and base.__name__.endswith("Servicer"):
            package = module.rsplit(".", 1)[0]
            service = f"{package}.{base.__name__.removesuffix('Servicer')}"
            break
    return CallMetrics(f"{type(servicer).__name__}.{method}", kind, service, method)


calls = CallCounter()


def for_method(servicer: object, method: Callable[..., object], kind: GrpcType) -> CallMetrics:
    """The series of servicer's method (see CallCounter.for_method)."""
    return calls.for_method(servicer, method, kind)
