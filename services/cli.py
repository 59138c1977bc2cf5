"""The `loansuite` command: run the suite, one service, the benchmark, operator tasks."""

from __future__ import annotations

import argparse
import gc
import getpass
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from services.auth.key_encryption import KeyEncryptionKeyError
from services.shared.errors import AppError
from services.shared.files import UnsafePermissionsError
from services.shared.logs import configure_logging
from services.shared.settings import Settings

__all__ = ["main"]

SERVICES = ("auth", "audit", "loans")  # start order: loans needs the other two
# Refusals at start that an operator fixes from one line, without a traceback.
_StartRefused = (KeyEncryptionKeyError, UnsafePermissionsError)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loansuite", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run auth, loans and audit as three processes")
    _data_dir(up)
    up.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="with no database URL configured: SQLite files (default) or an embedded "
        "PostgreSQL under DATA_DIR/postgres",
    )
    up.add_argument(
        "--tls",
        type=Path,
        metavar="DIR",
        help="mTLS with the certificates in DIR (made by `loansuite certs init --out DIR`)",
    )
    up.set_defaults(handler=_up)

    serve = commands.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=SERVICES)
    _data_dir(serve)
    serve.add_argument("--port", type=int, help="listen port (default: the service's own)")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default 1)"
    )
    serve.set_defaults(handler=_serve)

    _bench_parser(commands)

    admin = commands.add_parser("create-admin", help="create a platform admin (operator only)")
    _data_dir(admin)
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", required=True)
    admin.set_defaults(handler=_create_admin)
    _audit_parser(commands)
    _auth_parser(commands)
    demo = commands.add_parser(
        "demo", help="a scripted story against running services, each step with its answer"
    )
    for service in ("auth", "loans", "audit"):
        demo.add_argument(
            f"--{service}", metavar="HOST:PORT", help=f"the {service} service (default: settings)"
        )
    demo.set_defaults(handler=_demo)
    _certs_parser(commands)
    return parser


def _certs_parser(commands: Any) -> None:
    certs = commands.add_parser("certs", help="development certificates for TLS and mTLS")
    tasks = certs.add_subparsers(required=True, metavar="TASK")
    init = tasks.add_parser(
        "init", help="a development CA, a certificate per service and one for an operator"
    )
    init.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write them")
    init.add_argument("--force", action="store_true", help="replace an existing CA in DIR")
    init.set_defaults(handler=_certs_init)


def _bench_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="CreateLoan, GetLoan, ListLoans and audit ingest against Health/Check"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    bench.add_argument("--concurrency", type=int, default=16, help="calls in flight")
    bench.add_argument("--users", type=int, default=8, help="borrowers in the pool")
    bench.add_argument(
        "--server-model",
        choices=("thread", "aio"),
        default=None,
        help="grpcio server model to measure (default: the configured one)",
    )
    bench.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    bench.add_argument(
        "--workers",
        type=int,
        default=1,
        help="loans processes sharing its port (default 1; above 1 needs PostgreSQL)",
    )
    soak = bench.add_argument_group("soak", "a steady CreateLoan load instead of the phases")
    soak.add_argument(
        "--soak",
        type=float,
        metavar="SECONDS",
        help="offer CreateLoan at a fixed rate for SECONDS, with a trickle of other calls",
    )
    soak.add_argument(
        "--rate",
        type=float,
        metavar="RPS",
        help="CreateLoan calls offered per second (default: half of a 5 s closed-loop run)",
    )
    soak.add_argument(
        "--interval", type=float, metavar="SECONDS", help="figures every SECONDS (default 30)"
    )
    bench.set_defaults(handler=_bench)


def _audit_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="operator tasks on the audit log")
    tasks = audit.add_subparsers(required=True, metavar="TASK")
    verify = tasks.add_parser(
        "verify",
        help="check the audit log's hash chain straight from the database; exit 1 if broken",
    )
    _data_dir(verify)
    source = verify.add_mutually_exclusive_group()
    _audit_database(source)
    source.add_argument(
        "--file",
        type=Path,
        metavar="FILE",
        help="verify a file written by `audit export` instead, ending at the head it names",
    )
    verify.add_argument(
        "--expect-head",
        type=_head,
        metavar="SEQ:HASH",
        help="a published head (default: the last line of DATA_DIR/audit-heads.jsonl, which "
        "--database-url needs DATA_DIR named for; with --file, none: the file's own head is "
        "always checked)",
    )
    verify.set_defaults(handler=_audit_verify)
    export = tasks.add_parser(
        "export",
        help="write events 1..SEQ and the chain head at SEQ to a new JSON-lines file",
    )
    _data_dir(export)
    _audit_database(export)
    export.add_argument(
        "--until", type=int, required=True, metavar="SEQ", help="the last event to write"
    )
    export.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="the new file (never overwritten)"
    )
    export.set_defaults(handler=_audit_export)


def _auth_parser(commands: Any) -> None:
    auth = commands.add_parser("auth", help="operator tasks on the auth service")
    tasks = auth.add_subparsers(required=True, metavar="TASK")
    rotate = tasks.add_parser(
        "rotate-keys",
        help="sign new tokens with a new key; the old one verifies until its tokens expire",
    )
    _data_dir(rotate)
    rotate.set_defaults(handler=_auth_rotate_keys)


def _demo(args: argparse.Namespace) -> int:
    """Run the story; exit 1 with the error when a step fails."""
    import grpc
    from loansuite_client import LoansuiteError

    from services.demo import Targets, run_demo

    settings = Settings()
    targets = Targets(
        auth=args.auth or settings.target("auth"),
        loans=args.loans or f"{settings.host}:{settings.port('loans')}",
        audit=args.audit or settings.target("audit"),
    )
    try:
        run_demo(targets, sys.stdout)
    except (LoansuiteError, grpc.RpcError) as exc:
        print(f"loansuite: the demo stopped: {exc}", file=sys.stderr)
        return 1
    return 0


def _auth_rotate_keys(args: argparse.Namespace) -> int:
    """Print the new and the retired kid as one JSON object; exit 2 when refused."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.auth.wiring import rotate_keys

    try:
        rotation = rotate_keys(_settings(args))
    except (*_StartRefused, SQLAlchemyError) as exc:
        print(f"loansuite: cannot rotate the signing keys: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"kid": rotation.kid, "retired_kid": rotation.retired_kid}))
    return 0


def _audit_database(parser: Any) -> None:
    parser.add_argument(
        "--database-url",
        help="the audit database (default: LOANSUITE_AUDIT_DATABASE_URL, else DATA_DIR/audit.db)",
    )


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where SQLite files and the service secret live (default ./var)",
    )


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from services.shared.ports import why_taken
    from services.shared.tls import TlsSettingsError, tls_config

    settings = _settings(args)
    port = settings.port(args.service) if args.port is None else args.port
    # Checked before the database is opened or migrated: a start on a taken port
    # changes nothing and says so in one line. (Workers share their port on purpose;
    # their supervisor checked it.)
    if port and not settings.reuse_port and (reason := why_taken(settings.host, port)):
        print(
            f"loansuite: cannot listen on {settings.host}:{port} ({args.service}): {reason}; "
            "nothing was started",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level, service=args.service)
    try:
        tls_config(settings)  # checked once here, so that a mistake is one line, not a trace
    except TlsSettingsError as exc:
        print(f"loansuite: {exc}", file=sys.stderr)
        return 2
    if args.workers != 1:
        from services.workers import WorkersError, serve_workers

        try:
            return serve_workers(args.service, settings, args.workers, port)
        except WorkersError as exc:
            print(f"loansuite: {exc}", file=sys.stderr)
            return 2
    documents: dict[str, Any] = {}  # filled once the service is built (auth's JWKS)
    side_port = _side_port(args.service, settings, documents)
    if side_port is None:
        return 2
    from services.shared.server import StopSignals
    from services.shared.tracing import configure_tracing

    try:
        configure_tracing(args.service)  # exporters as OTEL_* say; none by default
    except ValueError as exc:
        print(f"loansuite: {exc}", file=sys.stderr)
        return 2
    signals = StopSignals()  # before the start: health reads SERVING before it returns
    wiring = importlib.import_module(f"services.{args.service}.wiring")
    try:
        server = wiring.start(settings, port=args.port)
    except _StartRefused as exc:  # a file others can read, a malformed key: one line
        print(f"loansuite: {exc}", file=sys.stderr)
        return 2
    # What start-up made lives as long as the process: moved out of the collector's
    # sight, so that full collections under load walk only what the calls made.
    gc.collect()
    gc.freeze()
    logging.getLogger("loansuite").info(
        "serving",
        extra={
            "port": server.port,
            "http_port": side_port.port,
            "database": _shown(settings.database_url(args.service)),
        },
    )
    documents.update(server.documents)
    server.wait_for_signal(settings.grace_seconds, settings.drain_seconds, signals)
    side_port.stop()
    return 0


def _side_port(service: str, settings: Settings, documents: dict[str, Any]) -> Any:
    """The HTTP side port (/metrics, JWKS), started before any migration; None if taken."""
    from services.shared.http import start_side_port

    port = settings.http_port(service)  # type: ignore[arg-type]
    try:
        return start_side_port(
            settings.host, port, documents=documents, reuse_port=settings.reuse_port
        )
    except OSError as exc:
        print(
            f"loansuite: HTTP side port {port} ({service}) on {settings.host}: "
            f"{exc.strerror or exc}; nothing was started",
            file=sys.stderr,
        )
        return None


def _shown(database_url: str) -> str:
    """A database URL fit for a log: its password masked."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


def _up(args: argparse.Namespace) -> int:
    from services.embedded_pg import PostgresUnreachableError
    from services.up import CertificatesMissingError, PortTakenError, run_suite

    try:
        return run_suite(_settings(args), args.database, tls_dir=args.tls)
    except (PostgresUnreachableError, PortTakenError, CertificatesMissingError) as exc:
        print(f"loansuite: {exc}", file=sys.stderr)
        return 2


def _create_admin(args: argparse.Namespace) -> int:
    from services.auth.wiring import create_admin

    password = os.environ.get("LOANSUITE_ADMIN_PASSWORD") or getpass.getpass("password: ")
    try:
        user_id = create_admin(_settings(args), email=args.email, password=password, name=args.name)
    except AppError as exc:
        fields = ", ".join(v.field for v in exc.field_violations)
        print(
            f"loansuite: {exc.reason}: {exc.message}" + (f" ({fields})" if fields else ""),
            file=sys.stderr,
        )
        return 1
    print(json.dumps({"user_id": user_id}))
    return 0


def _head(text: str) -> Any:
    from services.audit.offline import head_argument

    try:
        return head_argument(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _audit_verify(args: argparse.Namespace) -> int:
    """Print the verification as one JSON object; exit 0 intact, 1 broken, 2 unreadable."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.audit.export import ExportError, verify_file
    from services.audit.heads import HEADS_FILE_NAME
    from services.audit.offline import MissingHeadError, published_head, verify_database

    settings = _settings(args)
    try:
        if args.file is not None:
            result = verify_file(args.file, expected_head=args.expect_head)
        else:
            head = published_head(
                args.expect_head,
                settings.data_dir / HEADS_FILE_NAME,
                database_apart=bool(args.database_url or settings.audit_database_url),
                data_dir_named="data_dir" in settings.model_fields_set,
            )
            result = verify_database(
                args.database_url or settings.database_url("audit"),
                heads_path=settings.data_dir / HEADS_FILE_NAME,
                expected_head=head,
            )
    except MissingHeadError as exc:
        print(f"loansuite: audit verify: {exc}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError, ExportError) as exc:
        print(f"loansuite: cannot read the audit log: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict()))
    return 0 if result.intact else 1


def _audit_export(args: argparse.Namespace) -> int:
    """Print what was written as one JSON object; exit 2 when refused or unreadable."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.audit.export import ExportError, export_events

    try:
        exported = export_events(
            args.database_url or _settings(args).database_url("audit"),
            until=args.until,
            out=args.out,
        )
    except (OSError, SQLAlchemyError, ExportError) as exc:
        print(f"loansuite: cannot export the audit log: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(exported.as_dict()))
    return 0


def _certs_init(args: argparse.Namespace) -> int:
    """Print the files written as one JSON object; exit 2 when refused."""
    from services.certs import CertsError, init_certs

    try:
        written = init_certs(args.out, force=args.force)
    except (CertsError, OSError) as exc:
        print(f"loansuite: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "files": sorted(p.name for p in written)}))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from services.bench import run_bench
    from services.embedded_pg import PostgresUnreachableError

    try:
        return run_bench(
            json_output=args.json,
            seconds=args.seconds,
            concurrency=args.concurrency,
            users=args.users,
            server_model=args.server_model,
            database=args.database,
            workers=args.workers,
            soak=args.soak,
            rate=args.rate,
            interval=args.interval,
        )
    except PostgresUnreachableError as exc:
        print(f"loansuite: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
