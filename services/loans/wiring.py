"""Builds the loan service: database, auth client, relay to audit, gRPC server."""

from __future__ import annotations

import logging
from collections.abc import Callable

from loansuite.audit.v1 import audit_service_pb2_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc
from loansuite.loans.v1 import loan_service_pb2, loan_service_pb2_grpc

from services.loans.calendar.clock import Today, utc_today
from services.loans.calendar.sweep import ReportingSweep
from services.loans.models import IdempotencyRecord, OutboxEvent
from services.loans.servicer import LoanServicer
from services.loans.watching.bus import DEFAULT_QUEUE_SIZE, ChangeBus
from services.loans.watching.changes import pending_changes
from services.loans.watching.pg_listener import PgChangeListener
from services.shared.aio_handlers import CallMetadata, Placement, Placer
from services.shared.audit_client import AuditSink, relay_channel
from services.shared.auth_client import (
    RemoteKeyRing,
    RemoteUserDirectory,
    RemoteUserFinder,
    ServiceCredentials,
)
from services.shared.db import Database
from services.shared.identity import Authenticator, TokenVerifier
from services.shared.metrics import watch_pool
from services.shared.migrations import upgrade
from services.shared.paging import PageTokens
from services.shared.relay import OutboxRelay
from services.shared.retention import RetentionSweep
from services.shared.server import Registration, Server, create_server
from services.shared.settings import Settings
from services.shared.tls import TlsConfig, open_channel, tls_config

__all__ = ["start"]

log = logging.getLogger("loansuite.loans")

SERVICE_NAME = loan_service_pb2.DESCRIPTOR.services_by_name["LoanService"].full_name
# Calls that wait on nothing but their own statements: under grpc.aio they run on the
# event loop once the caller is known (token and user cached). GetLoanReport and
# ListReportingObligations may first record a missed period, in a transaction of their
# own, and InviteLender asks auth for the lender: those take a thread.
_READS_ON_THE_LOOP = (
    "GetLoan",
    "ListLoans",
    "ListLoanHistory",
    "ListKpis",
    "ListKpiResults",
    "GetMarginSchedule",
    "ListMarginAdjustments",
    "ListLedgerEntries",
)
# ...and writes that also wait for their group commit, suspended (shared/suspend.py).
_WRITES_ON_THE_LOOP = (
    "CreateLoan",
    "UpdateLoan",
    "DeleteLoan",
    "SubmitLoan",
    "ApproveLoan",
    "RejectLoan",
    "WithdrawLoan",
    "ActivateLoan",
    "CloseLoan",
    "CreateKpi",
    "UpdateKpi",
    "DeleteKpi",
    "AcceptKpi",
    "RejectKpi",
    "CreateMarginRatchet",
    "UpdateMarginRatchet",
    "DeleteMarginRatchet",
    "ReportKpiResult",
    "VerifyKpiResult",
    "RequestDrawdown",
    "ApproveDrawdown",
    "RejectDrawdown",
    "RecordRepayment",
)
# Where each of them runs once its caller is known; any other call, or one whose caller
# is not known yet, takes a thread.
ON_THE_LOOP: dict[str, Placement] = {
    **{f"/{SERVICE_NAME}/{method}": "loop" for method in _READS_ON_THE_LOOP},
    **{f"/{SERVICE_NAME}/{method}": "suspendable" for method in _WRITES_ON_THE_LOOP},
}


def start(
    settings: Settings,
    *,
    port: int | None = None,
    watch_queue_size: int = DEFAULT_QUEUE_SIZE,
    today: Today = utc_today,
) -> Server:
    """Migrate the loans database, build the service and start serving; port 0 picks a free one.

    today is the business date the calendar and the loan rules judge by (tests fix it).
    """
    db = Database(settings.database_url("loans"))
    watch_pool("loans", db.engine)
    upgrade(db, "services.loans:migrations")
    bus, stop_feed = _change_feed(db, settings, watch_queue_size)
    secret = settings.resolved_service_secret()
    tls = tls_config(settings)
    auth_channel = open_channel(settings.target("auth"), tls)
    auth = auth_service_pb2_grpc.AuthServiceStub(auth_channel)
    credentials = ServiceCredentials(auth, service_name="loans", secret=secret)
    audit_channel = relay_channel(settings.target("audit"), tls)
    relay = OutboxRelay(
        db,
        OutboxEvent,
        AuditSink(audit_service_pb2_grpc.AuditServiceStub(audit_channel), credentials),
        source="loans",
    )
    authenticator = _authenticator(settings, auth, credentials)
    servicer = LoanServicer(
        db,
        authenticator,
        PageTokens(secret, purpose="loans"),
        users=RemoteUserFinder(auth, credentials),
        bus=bus,
        today=today,
    )
    server = _serve(servicer, settings, port, tls, _placer(authenticator))
    relay.start(health=server.set_health)
    sweep = RetentionSweep(
        db, settings.retention(), outbox=OutboxEvent, idempotency=IdempotencyRecord, source="loans"
    )
    sweep.start(settings.retention_sweep_seconds)
    reporting = ReportingSweep(db, today)
    if settings.reporting_sweep_seconds > 0:
        reporting.start(settings.reporting_sweep_seconds)
    server.on_stopping(bus.close)
    releases = (db.dispose, auth_channel.close, audit_channel.close, relay.stop, stop_feed)
    for release in (*releases, sweep.stop, reporting.stop):
        server.on_stop(release)
    return server


def _authenticator(
    settings: Settings, auth: auth_service_pb2_grpc.AuthServiceStub, credentials: ServiceCredentials
) -> Authenticator:
    """Steps 1 and 2: tokens verified against auth's cached keys, users loaded through a cache."""
    return Authenticator(
        TokenVerifier(
            RemoteKeyRing(auth), issuer=settings.token_issuer, audience=settings.token_audience
        ),
        RemoteUserDirectory(auth, credentials, ttl=settings.user_cache_ttl_seconds),
    )


def _placer(authenticator: Authenticator) -> Placer:
    def place(method: str, metadata: CallMetadata) -> Placement:
        placement = ON_THE_LOOP.get(method, "pool")
        if placement == "pool" or authenticator.answers_at_once(metadata):
            return placement
        return "pool"

    return place


def _serve(
    servicer: LoanServicer,
    settings: Settings,
    port: int | None,
    tls: TlsConfig | None,
    place: Placer,
) -> Server:
    registration = Registration(
        SERVICE_NAME,
        lambda s: loan_service_pb2_grpc.add_LoanServiceServicer_to_server(servicer, s),
        place,
    )
    return create_server(
        [registration],
        f"{settings.host}:{settings.port('loans') if port is None else port}",
        max_workers=settings.max_workers,
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
        model=settings.server_model,
        reuse_port=settings.reuse_port,
        tls=tls,
        max_receive_message_bytes=settings.max_receive_message_bytes,
        max_send_message_bytes=settings.max_send_message_bytes,
    )


def _change_feed(
    db: Database, settings: Settings, queue_size: int
) -> tuple[ChangeBus, Callable[[], None]]:
    """The WatchLoans bus and what feeds it; returns the bus and how to stop the feed.

    Streams may take at most half the worker threads, so unary calls keep the rest.
    """

    def new_bus(*, live: bool) -> ChangeBus:
        return ChangeBus(
            max_subscribers=max(1, settings.max_workers // 2),
            per_user=settings.streams_per_user,
            per_organization=settings.streams_per_organization,
            queue_size=queue_size,
            live=live,
        )

    if db.is_sqlite:  # one process per database: its own commits are all there is
        bus = new_bus(live=True)
        db.on_commit(lambda session: bus.publish(pending_changes(session)))
        return bus, lambda: None
    # Every replica hears every commit through PostgreSQL; not live until LISTEN is in place.
    bus = new_bus(live=False)
    listener = PgChangeListener(db.url, bus)
    if not listener.start():
        log.warning("change listener not connected yet; WatchLoans answers UNAVAILABLE until it is")
    return bus, listener.stop
