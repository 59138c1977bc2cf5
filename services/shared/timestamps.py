"""Instants on the wire: aware datetimes as google.protobuf.Timestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["timestamp"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    """The Timestamp of an aware datetime (a naive one raises TypeError)."""
    # The same as Timestamp.FromDatetime, at a fraction of its cost: it runs for every
    # instant of every listed loan.
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)
