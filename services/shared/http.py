"""The HTTP side port of a service: /metrics, and documents a service publishes (JWKS).

A small threaded WSGI server beside the gRPC port. ``/metrics`` is
prometheus_client's own WSGI app (text format, or OpenMetrics when asked). Under
``serve --workers N`` the workers share the side port as they share the gRPC one,
and whichever answers reads every worker's figures from
``PROMETHEUS_MULTIPROC_DIR`` (metrics.py), so any answer is the whole service's.
"""

from __future__ import annotations

import logging
import os
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client as prom
from prometheus_client import multiprocess

from services.shared.metrics import refresh_probes

__all__ = ["MULTIPROC_ENV", "Document", "SidePort", "start_side_port"]

log = logging.getLogger("loansuite.http")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A document served as JSON: called on each request, so it is always current.
Document = Callable[[], bytes]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
# In multiprocess mode each worker refreshes its probe gauges this often, as a scrape
# answered by another worker cannot ask it.
PROBE_SECONDS = 5.0


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds the process at exit
    allow_reuse_address = True


class _SharedServer(_Server):
    allow_reuse_port = True  # the workers of `serve --workers N` share the port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("side port request", extra={"line": format % args})


class SidePort:
    """A running side port; stop() closes it."""

    def __init__(self, server: WSGIServer, probes: threading.Event | None) -> None:
        self._server = server
        self._probes_stopped = probes
        self.port: int = server.server_port
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._probes_stopped is not None:
            self._probes_stopped.set()
        self._server.shutdown()
        self._server.server_close()


def start_side_port(
    host: str,
    port: int,
    *,
    documents: Mapping[str, Document] | None = None,
    reuse_port: bool = False,
) -> SidePort:
    """Serve /metrics and documents (path to JSON) on host:port (0: a free port).

    documents is read on each request, so what is added to it later is served too.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    app = _app(_metrics_app(directory), documents if documents is not None else {})
    server_class = _SharedServer if reuse_port else _Server
    server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    probes = None
    if directory:
        probes = threading.Event()
        threading.Thread(target=_refresh_every, args=(probes,), name="probes", daemon=True).start()
    return SidePort(server, probes)


def _metrics_app(directory: str | None) -> Any:
    if not directory:
        return prom.make_wsgi_app(prom.REGISTRY)
    registry = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return prom.make_wsgi_app(registry)


def _app(metrics: Any, documents: Mapping[str, Document]) -> Any:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            refresh_probes()
            result: Iterable[bytes] = metrics(environ, start_response)
            return result
        document = documents.get(path)
        if document is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = document()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                # Keys rotate with notice (old ones verify until their tokens expire),
                # and an unknown kid makes JOSE clients fetch again at once.
                ("Cache-Control", "public, max-age=60"),
            ],
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    return app


def _refresh_every(stopped: threading.Event) -> None:
    while not stopped.wait(PROBE_SECONDS):
        try:
            refresh_probes()
        except Exception:  # a failed probe must not end the loop; the next may succeed
            log.exception("metrics probe failed")
