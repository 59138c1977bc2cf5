"""Ports on this host: a free one to listen on, and whether one is taken."""

from __future__ import annotations

import socket

__all__ = ["free_port", "why_taken"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (another program may take it before the caller does)."""
    with socket.socket(_family(host)) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def why_taken(host: str, port: int) -> str | None:
    """The reason a server could not listen on host:port now, or None if it could."""
    with socket.socket(_family(host)) as probe:
        # SO_REUSEADDR, as the gRPC server sets it: connections of an earlier run in
        # TIME_WAIT do not count, a listening socket does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
