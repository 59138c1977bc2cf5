"""`loansuite serve SERVICE --workers N`: N processes of one service on one port.

Python runs one thread at a time per process, so one process uses about one
core. N worker processes share the port through SO_REUSEPORT; the kernel
spreads new connections across them. Every process is stateless (the database
holds the state), so nothing else has to be shared:

- the supervisor first binds the port itself, without SO_REUSEPORT, and lets
  it go: a port that another program holds fails here, loudly, instead of
  being silently shared with it;
- the HTTP side port is shared the same way; each worker writes its metrics to
  files in a private directory (prometheus_client's multiprocess mode, through
  PROMETHEUS_MULTIPROC_DIR), so whichever worker answers a scrape reports the
  whole service; the directory is made new at start and removed at the end;
- SIGTERM or SIGINT is passed on to every worker, which drains and stops;
- when a worker exits on its own, the supervisor says which, stops the rest
  and exits non-zero, so that its own supervisor (a container runtime,
  systemd) restarts the whole service.

On SQLite all writers still take turns on one file; the loans service also
needs PostgreSQL for several workers, because on SQLite its change
notifications only reach WatchLoans subscribers of the process that wrote.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from prometheus_client import multiprocess

from services.shared.http import MULTIPROC_ENV
from services.shared.ports import why_taken
from services.shared.settings import ServiceName, Settings

__all__ = ["WorkersError", "serve_workers"]

log = logging.getLogger("loansuite.workers")


class WorkersError(Exception):
    """The workers cannot start as asked; the message says why, for an operator."""


def serve_workers(service: ServiceName, settings: Settings, workers: int, port: int) -> int:
    """Run `workers` processes of service on port until a signal; return the exit code."""
    _check(service, settings, workers, port)
    metrics_dir = tempfile.mkdtemp(prefix=f"loansuite-{service}-metrics-")
    try:
        return _supervise(service, settings, workers, port, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(
    service: ServiceName, settings: Settings, workers: int, port: int, metrics_dir: str
) -> int:
    env = {
        **os.environ,
        "LOANSUITE_REUSE_PORT": "1",
        "LOANSUITE_DATA_DIR": str(settings.data_dir.resolve()),
        MULTIPROC_ENV: metrics_dir,
    }
    command = [sys.executable, "-m", "services.cli", "serve", service, "--port", str(port)]
    children = [subprocess.Popen(command, env=env) for _ in range(workers)]
    log.info("workers started", extra={"port": port, "pids": [c.pid for c in children]})
    stopping = {"requested": False}

    def request(*_: object) -> None:
        stopping["requested"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request)
    try:
        exited = _first_exit(children, stopping)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        codes = [child.wait() for child in children]
        for child in children:  # a dead worker's live gauges must not linger
            multiprocess.mark_process_dead(child.pid, metrics_dir)  # type: ignore[no-untyped-call]
    if exited is None:
        return 0
    log.error(
        "a worker exited; stopping the others",
        extra={"pid": exited.pid, "code": exited.returncode},
    )
    return max(abs(code) for code in codes) or 1


def _first_exit(
    children: list[subprocess.Popen[bytes]], stopping: dict[str, bool]
) -> subprocess.Popen[bytes] | None:
    """The first worker that exits on its own; None once a stop was requested."""
    while not stopping["requested"]:
        for child in children:
            if child.poll() is not None:
                return child
        time.sleep(0.2)
    return None


def _check(service: ServiceName, settings: Settings, workers: int, port: int) -> None:
    if workers < 1:
        raise WorkersError("--workers must be at least 1")
    if port == 0:
        raise WorkersError("several workers need a fixed port to share, not port 0")
    if service == "loans" and settings.database_url("loans").startswith("sqlite"):
        raise WorkersError(
            "several loans workers need PostgreSQL: on SQLite a change reaches only the "
            "WatchLoans subscribers of the process that wrote it"
        )
    if reason := why_taken(settings.host, port):
        raise WorkersError(f"cannot listen on {settings.host}:{port}: {reason}")
    http_port = settings.http_port(service)
    if http_port and (reason := why_taken(settings.host, http_port)):
        raise WorkersError(f"HTTP side port {settings.host}:{http_port}: {reason}")
