"""Random requests for any RPC, built from its proto descriptor alone.

Every field of the input message may be missing or set: integers to the
extremes of their wire type, strings to hostile, huge or odd Unicode text or
to values of the run that reach past the first checks (real ids, etags,
tokens), enums to unknown numbers, repeated and map fields to a few entries,
nested messages recursively, Timestamps past the calendar and FieldMasks
naming real, unknown and nonsense paths. The encoded request is then sent as
it is, or with its fields repeated on the wire, with an unknown field, made
undecodable, or made larger than the transport accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

__all__ = ["MAX_MESSAGE_BYTES", "VARIANTS", "Encoded", "encoded", "messages"]

# The stubs type a descriptor reached through another as either google.protobuf's or upb's.
Descriptor = Any
Draw = Callable[[st.SearchStrategy[Any]], Any]
Corpus = Callable[[str], Sequence[str]]  # a field's name -> values of the run worth trying there

MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024  # grpcio's default receive limit, which servers keep
MAX_DEPTH: Final = 3
_T = FieldDescriptor
_BOUNDS: Final[dict[int, tuple[int, int]]] = {
    **dict.fromkeys((_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((_T.TYPE_UINT32, _T.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((_T.TYPE_UINT64, _T.TYPE_FIXED64), (0, 2**64 - 1)),
}
# Numbers near the domain's own limits (page sizes, basis points) and the wire's.
_DOMAIN_INTEGERS: Final = (0, 1, -1, 24, 25, 26, 99, 100, 101, 499, 500, 501, 1000, 10**9)
_UNKNOWN_ENUMS: Final = (-1, 99, 2**31 - 1, -(2**31))
# Control characters, bidirectional controls, invisible and odd Unicode, injection classics.
HOSTILE: Final = (
    "\x00",
    "Green\x00Bank",
    "Solar\x1b[2J Park\x07",
    "Invoice \u202efdp.exe",
    "\u2066isolate\u2069",
    "\u200b\u200d\ufeff",
    "line\nbreak",
    "carriage\rreturn",
    "tab\tbed",
    "\x7f\x85\x9b",
    "\u2028\u2029",
    "e\u0301\u0301\u0301",
    "\U0001f4a9\U0010ffff\ufffe\uffff",
    "\ufb01 \uff21\uff44\uff41 \u2460",  # a ligature, fullwidth letters, a circled digit
    "\u0661\u0662\u0663\u0664.\u0665",  # Arabic-Indic digits, which Decimal accepts
    "\uff11\uff12\uff13",  # fullwidth digits
    " ",
    "   padded   ",
    "%s%n%x{0}${x}",
    "' OR '1'='1'; --",
    "Robert'); DROP TABLE loans;--",
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "NaN",
    "-Infinity",
    "1e999999",
    "-0",
    "0x10",
    "1_000",
    "9" * 40,
    "0." + "0" * 30 + "1",
    "2027-02-29",
    "0000-00-00",
    "9999-12-31",
    "10000-01-01",
    "2027-1-1",
    "2027-01-01T00:00:00Z",
    "USER_ROLE_ADMIN",
    "SERVICE",
)
_LONG_LENGTHS: Final = (256, 4097, 70_000, 1_000_000)
_TIMESTAMP_SECONDS: Final = (
    0,
    -1,
    -62_135_596_800,  # 0001-01-01, the first instant a Timestamp may hold
    -62_135_596_801,
    253_402_300_799,  # 9999-12-31T23:59:59, the last
    253_402_300_800,
    2**63 - 1,
    -(2**63),
)
_NANOS: Final = (0, 1, -1, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))
_MASK_NONSENSE: Final = ("", "state", "id", "etag", "*", "name.first", "NAME", "update_mask")


_BOOLEANS: Final = st.booleans()
_COUNTS: Final = st.integers(0, 3)
_SECONDS: Final = st.sampled_from(_TIMESTAMP_SECONDS) | st.integers(0, 4_102_444_800)
_NANOS_ANY: Final = st.sampled_from(_NANOS)
_HOSTILE: Final = st.sampled_from(HOSTILE)
_LONG: Final = st.builds(
    lambda s, n: (s or "x") * (n // max(len(s), 1)), _HOSTILE, st.sampled_from(_LONG_LENGTHS)
)
_TEXT: Final = st.one_of(st.text(max_size=24), _HOSTILE, _LONG)


def _integers(field: Any) -> st.SearchStrategy[int]:
    low, high = _BOUNDS[field.type]
    edges = sorted(
        {low, low + 1, high - 1, high, *(n for n in _DOMAIN_INTEGERS if low <= n <= high)}
    )
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


class _Builder:
    """Fills messages field by field; each field's strategy is made once and kept."""

    def __init__(self, corpus: Corpus) -> None:
        self._corpus = corpus
        self._scalars: dict[str, st.SearchStrategy[Any]] = {}
        self._masks: dict[str, st.SearchStrategy[list[str]]] = {}

    def scalars(self, field: Any) -> st.SearchStrategy[Any]:
        if field.full_name not in self._scalars:
            self._scalars[field.full_name] = self._make_scalars(field)
        return self._scalars[field.full_name]

    def _make_scalars(self, field: Any) -> st.SearchStrategy[Any]:
        if field.type in _BOUNDS:
            return _integers(field)
        if field.type == _T.TYPE_ENUM:
            defined = [value.number for value in field.enum_type.values]
            return st.sampled_from([*defined, *_UNKNOWN_ENUMS])
        if field.type == _T.TYPE_STRING:
            known = self._corpus(field.name)
            return st.one_of(st.sampled_from(list(known)), _TEXT) if known else _TEXT
        if field.type == _T.TYPE_BYTES:
            return st.binary(max_size=64)
        if field.type == _T.TYPE_BOOL:
            return _BOOLEANS
        return st.floats(width=32) if field.type == _T.TYPE_FLOAT else st.floats()

    def fill(self, draw: Draw, message: Message, depth: int) -> None:
        """Set a random subset of message's fields; the rest stay missing."""
        descriptor = message.DESCRIPTOR
        if descriptor.full_name == "google.protobuf.Timestamp":
            message.seconds = draw(_SECONDS)  # type: ignore[attr-defined]
            message.nanos = draw(_NANOS_ANY)  # type: ignore[attr-defined]
            return
        for field in descriptor.fields:
            if not draw(_BOOLEANS):  # missing: what every example shrinks towards
                continue
            if field.type == _T.TYPE_MESSAGE and depth >= MAX_DEPTH:
                continue
            target = getattr(message, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                self._map(draw, target, field.message_type, depth)
            elif field.is_repeated:
                self._repeated(draw, target, field, descriptor, depth)
            elif field.type == _T.TYPE_MESSAGE:
                self._nested(draw, target, descriptor, depth)
            else:
                setattr(message, field.name, draw(self.scalars(field)))

    def _nested(self, draw: Draw, child: Message, parent: Descriptor, depth: int) -> None:
        if child.DESCRIPTOR.full_name == "google.protobuf.FieldMask":
            child.paths.extend(draw(self._mask_paths(parent)))  # type: ignore[attr-defined]
            return
        child.SetInParent()  # present, even when every field of it stays missing
        self.fill(draw, child, depth + 1)

    def _mask_paths(self, parent: Descriptor) -> st.SearchStrategy[list[str]]:
        """Paths of the request's own fields, and nonsense."""
        if parent.full_name not in self._masks:
            names = [f.name for f in parent.fields]
            paths = st.sampled_from([*names, *_MASK_NONSENSE]) | _HOSTILE
            self._masks[parent.full_name] = st.lists(paths, max_size=4)
        return self._masks[parent.full_name]

    def _repeated(
        self, draw: Draw, target: Any, field: Any, parent: Descriptor, depth: int
    ) -> None:
        for _ in range(draw(_COUNTS)):
            if field.type == _T.TYPE_MESSAGE:
                self._nested(draw, target.add(), parent, depth)
            else:
                target.append(draw(self.scalars(field)))

    def _map(self, draw: Draw, target: Any, entry: Descriptor, depth: int) -> None:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        for _ in range(draw(_COUNTS)):
            k = draw(self.scalars(key))
            if value.type == _T.TYPE_MESSAGE:
                self._nested(draw, target[k], entry, depth)
            else:
                target[k] = draw(self.scalars(value))


def messages(descriptor: Descriptor, corpus: Corpus) -> st.SearchStrategy[Message]:
    """Random messages of the descriptor's type."""
    builder, message_class = _Builder(corpus), GetMessageClass(descriptor)

    @st.composite
    def build(draw: Draw) -> Message:
        message = message_class()
        builder.fill(draw, message, 0)
        return message

    return build()


@dataclass(frozen=True)
class Encoded:
    """What goes on the wire for one request message, and how it was bent."""

    message: Message
    variant: str
    data: bytes
    extra: Message | None = None  # the second message of a "repeated" variant

    @property
    def transport_refuses(self) -> bool:
        """Whether the transport itself must refuse this before any handler sees it."""
        return self.variant == "undecodable" or self.oversized

    @property
    def oversized(self) -> bool:
        """Larger than the servers accept: huge field values can get there on their own."""
        return len(self.data) > MAX_MESSAGE_BYTES

    def __repr__(self) -> str:
        # Short: Hypothesis prints every falsifying example, and some carry megabytes.
        shown = [_short(self.message)] + ([_short(self.extra)] if self.extra is not None else [])
        return f"<{self.variant}, {len(self.data)} bytes: {' then '.join(shown)}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _short(message: Message) -> str:
    shown = text_format.MessageToString(message, as_one_line=True, as_utf8=True)
    return repr(shown if len(shown) <= 300 else f"{shown[:300]}… ({len(shown)} characters)")


VARIANTS: Final = ("plain", "repeated", "unknown_field", "undecodable", "oversized")
_VARIANT: Final = st.sampled_from(
    ("plain",) * 6 + ("repeated",) * 3 + ("unknown_field",) * 2 + VARIANTS[3:]
)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


_OVERSIZED: Final = _length_delimited(4095, bytes(MAX_MESSAGE_BYTES))


def _undecodable(descriptor: Descriptor) -> bytes:
    """Bytes no parser accepts: invalid UTF-8 in a string field, or a truncated varint."""
    strings = [f for f in descriptor.fields if f.type == _T.TYPE_STRING and not f.is_repeated]
    if strings:
        return _length_delimited(strings[0].number, b"\xff\xfe\xc0\x80")
    return _key(1, 0) + b"\xff"


def encoded(descriptor: Descriptor, corpus: Corpus) -> st.SearchStrategy[Encoded]:
    """A random request of the descriptor's type, encoded as one of VARIANTS."""
    requests = messages(descriptor, corpus)
    suffixes = {
        "unknown_field": _key(4093, 0) + _varint(2**64 - 1) + _length_delimited(4094, b"\x00\xff"),
        "undecodable": _undecodable(descriptor),
        "oversized": _OVERSIZED,
    }

    @st.composite
    def build(draw: Draw) -> Encoded:
        message = draw(requests)
        variant = draw(_VARIANT)
        extra = draw(requests) if variant == "repeated" else None
        suffix = extra.SerializeToString() if extra is not None else suffixes.get(variant, b"")
        return Encoded(message, variant, message.SerializeToString() + suffix, extra)

    return build()
