"""Shared type aliases and small typed records; no generated code, no I/O.

``Change`` and ``Violation`` are NamedTuples, so a plain ``(a, b, c)`` tuple
still unpacks like one and compares equal to one.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Change", "Metadata", "Violation"]

# gRPC call metadata as this suite sends it: (key, value) pairs of text.
Metadata = tuple[tuple[str, str], ...]


class Change(NamedTuple):
    """One audited field change; old and new are JSON values, "" when absent."""

    field: str
    old: str
    new: str


class Violation(NamedTuple):
    """One failed validation rule: the proto field path, a stable reason, a description."""

    field: str
    reason: str
    description: str
