"""What the loans conversion modules share: proto enum numbers to the names schemas take."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["enum_name"]


class _ProtoEnum(Protocol):
    def Name(self, number: Any, /) -> str: ...


def enum_name(enum: _ProtoEnum, number: int) -> str:
    """The proto name of an enum number, as the form schemas take it."""
    try:
        return enum.Name(number)
    except ValueError:  # an unknown number has no name; the schema reports it as invalid
        return str(number)
