"""Instants on the wire: aware datetimes as google.protobuf.Timestamp."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["timestamp"]


def timestamp(value: datetime) -> Timestamp:
    """The Timestamp of an aware datetime."""
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
