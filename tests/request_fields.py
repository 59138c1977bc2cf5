"""Every field of every request of the three services, found from the proto descriptors.

The walks here know nothing of any particular RPC: a field added to a request
is found by them the day it is added, so a test built on them cannot forget it.
Field paths are proto paths (``filter.occur_time_from.seconds``); a repeated
field's path names its first element without an index (``events.sequence``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from loansuite.audit.v1 import audit_service_pb2
from loansuite.auth.v1 import auth_service_pb2
from loansuite.loans.v1 import loan_service_pb2

__all__ = [
    "EXTREMES",
    "INTEGER_TYPES",
    "METHODS",
    "integer_fields",
    "set_field",
    "string_fields",
    "without_indexes",
]

SERVICES: Final = (
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
    loan_service_pb2.DESCRIPTOR.services_by_name["LoanService"],
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
)
# Every RPC of the three services, by its short name (names are unique across them).
METHODS: Final[dict[str, MethodDescriptor]] = {
    method.name: method for service in SERVICES for method in service.methods
}

_INT32: Final = (0, -1, 2**31 - 1, -(2**31))
_INT64: Final = (0, -1, 2**63 - 1, -(2**63))
F = FieldDescriptor
# The values at the edges of each integer type the wire can carry. Enums are open in
# proto3: any int32 arrives, named or not.
EXTREMES: Final[dict[int, tuple[int, ...]]] = {
    F.TYPE_INT32: _INT32,
    F.TYPE_SINT32: _INT32,
    F.TYPE_SFIXED32: _INT32,
    F.TYPE_ENUM: _INT32,
    F.TYPE_INT64: _INT64,
    F.TYPE_SINT64: _INT64,
    F.TYPE_SFIXED64: _INT64,
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 1, 2**63 - 1, 2**63, 2**64 - 1),
    F.TYPE_FIXED64: (0, 1, 2**63 - 1, 2**63, 2**64 - 1),
}
INTEGER_TYPES: Final = frozenset(EXTREMES)


def _scalar_fields(message: Descriptor, prefix: str = "") -> Iterator[tuple[str, FieldDescriptor]]:
    for field in message.fields:
        path = f"{prefix}{field.name}"
        if field.message_type is not None:
            yield from _scalar_fields(field.message_type, f"{path}.")
        else:
            yield path, field


def integer_fields(message: Descriptor) -> list[tuple[str, FieldDescriptor]]:
    """The integer and enum fields of a request, nested ones included, by proto path."""
    return [(p, f) for p, f in _scalar_fields(message) if f.type in INTEGER_TYPES]


def string_fields(message: Descriptor) -> list[str]:
    """The string fields of a request, nested ones included, by proto path."""
    return [p for p, f in _scalar_fields(message) if f.type == F.TYPE_STRING]


def set_field(message: Message, path: str, value: Any) -> None:
    """Set the field at path; a repeated field holds value as its first (or only) element."""
    *parents, name = path.split(".")
    target = message
    for parent in parents:
        field = target.DESCRIPTOR.fields_by_name[parent]
        if field.is_repeated:
            container = getattr(target, parent)
            target = container[0] if len(container) else container.add()
        else:
            target = getattr(target, parent)
    field = target.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        getattr(target, name)[:] = [value]
    else:
        setattr(target, name, value)


def without_indexes(field: str) -> str:
    """A violation's field path without list positions: ``events[0].x`` is ``events.x``."""
    while "[" in field:
        start = field.index("[")
        field = field[:start] + field[field.index("]", start) + 1 :]
    return field
