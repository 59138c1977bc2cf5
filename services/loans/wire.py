"""What the loans conversion modules share: proto enum numbers to the names schemas take."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["enum_name"]


class _ProtoEnum(Protocol):
    def Name(self, number: Any, /) -> str: ...

    def values(self) -> list[Any]: ...


def enum_name(enum: _ProtoEnum, number: int) -> str:
    """The proto name of an enum number, as the form schemas take it."""
    # An unknown enum number has no name; the schema reports it as invalid.
    return enum.Name(number) if number in enum.values() else str(number)
