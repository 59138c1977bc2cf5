"""Render docs/API.md, the contract's reference, from the descriptor set with its comments.

gen_protos.py calls this, so `make gen` writes the page and `--check` fails
when it is stale: the comments in protos/ are the one place the API is described.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2

__all__ = ["render"]

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}
# descriptor.proto's field numbers, the path elements of source locations
MESSAGE, ENUM, SERVICE, FIELD, VALUE, METHOD, NESTED = 4, 5, 6, 2, 2, 2, 3

HEADER = """# API reference

Generated from the comments in `protos/` by `make gen` (scripts/gen_api_doc.py);
`make test` fails when it is stale. Every answer the domain decides is an
envelope, `oneof result {{ <payload> = 1; loansuite.common.v1.Error error = 2; }}`,
with gRPC status OK; an outcome about the call's transport or capacity (a server
that is stopping, a throttle, a quota) is a real status, `UNAVAILABLE` or
`RESOURCE_EXHAUSTED`, carrying the same `Error` as a `google.rpc.Status` detail
(see [ErrorCode](#enum-errorcode)). The README has the conventions (metadata,
money, dates).

{contents}
"""


class _Comments:
    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self._by_path = {
            tuple(loc.path): " ".join(loc.leading_comments.split())
            for loc in file.source_code_info.location
            if loc.leading_comments
        }

    def __call__(self, *path: int) -> str:
        return self._by_path.get(path, "").replace("|", "\\|")


def render(descriptor_set: bytes) -> str:
    """The page for the loansuite files of the descriptor set."""
    files = [
        f
        for f in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
        if f.package.startswith("loansuite.")
    ]
    files.sort(key=lambda f: (f.package != "loansuite.common.v1", f.package))
    contents = "\n".join(f"- [`{f.package}`](#{f.package.replace('.', '')})" for f in files)
    return HEADER.format(contents=contents) + "".join(_file(f) for f in files)


def _file(file: descriptor_pb2.FileDescriptorProto) -> str:
    comment = _Comments(file)
    out = [f"\n## {file.package}\n\n`{file.name}`\n"]
    for s, service in enumerate(file.service):
        out.append(f"\n### service {service.name}\n\n{comment(SERVICE, s)}\n")
        out.append("\n| RPC | request | response | |\n|---|---|---|---|\n")
        for m, method in enumerate(service.method):
            request = ("stream " if method.client_streaming else "") + _short(method.input_type)
            response = ("stream " if method.server_streaming else "") + _short(method.output_type)
            out.append(
                f"| `{method.name}` | {request} | {response} | {comment(SERVICE, s, METHOD, m)} |\n"
            )
    for m, message in enumerate(file.message_type):
        out.append(_message(message, comment, (MESSAGE, m), message.name))
    for e, enum in enumerate(file.enum_type):
        out.append(_enum(enum, comment, (ENUM, e), enum.name))
    return "".join(out)


def _message(
    message: descriptor_pb2.DescriptorProto,
    comment: _Comments,
    path: tuple[int, ...],
    name: str,
) -> str:
    out = [f"\n### {name}\n\n{comment(*path)}\n"]
    if message.field:
        out.append("\n| field | type | # | |\n|---|---|---|---|\n")
        for f, field in enumerate(message.field):
            kind = _type(field)
            if field.HasField("oneof_index"):
                kind += f" (oneof `{message.oneof_decl[field.oneof_index].name}`)"
            out.append(
                f"| `{field.name}` | {kind} | {field.number} | {comment(*path, FIELD, f)} |\n"
            )
    for n, nested in enumerate(message.nested_type):
        if not nested.options.map_entry:
            out.append(_message(nested, comment, (*path, NESTED, n), f"{name}.{nested.name}"))
    for e, enum in enumerate(message.enum_type):
        out.append(_enum(enum, comment, (*path, 4, e), f"{name}.{enum.name}"))
    return "".join(out)


def _enum(
    enum: descriptor_pb2.EnumDescriptorProto,
    comment: _Comments,
    path: tuple[int, ...],
    name: str,
) -> str:
    out = [f"\n### enum {name}\n\n{comment(*path)}\n\n| value | # | |\n|---|---|---|\n"]
    for v, value in enumerate(enum.value):
        out.append(f"| `{value.name}` | {value.number} | {comment(*path, VALUE, v)} |\n")
    return "".join(out)


def _short(type_name: str, *, enum: bool = False) -> str:
    """A type's name without the package when it is one of ours, linked to its section."""
    parts = type_name.lstrip(".").split(".")
    if parts[0] == "loansuite":
        name = ".".join(parts[3:])
        anchor = ("enum-" if enum else "") + name.replace(".", "").lower()
        return f"[{name}](#{anchor})"
    return f"`{'.'.join(parts)}`"


def _type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
        kind = _short(field.type_name, enum=field.type == FDP.TYPE_ENUM)
    else:
        kind = f"`{SCALARS[field.type]}`"
    if field.label == FDP.LABEL_REPEATED:
        return f"repeated {kind}"
    return kind
