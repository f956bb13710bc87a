"""Request checks shared by servicers: each failure names the field."""

from __future__ import annotations

from google.protobuf import struct_pb2

from specloom.errors import InvalidArgument
from specloom.ids import MAX_ID_LENGTH
from specloom.protoconv import JsonObject, StructTooDeep, struct_to_dict
from specloom.v1 import common_pb2 as pb

MAX_SCOPE_PART = 128


def require_id(field: str, value: str) -> str:
    """A non-empty id of sane length without control characters."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"{field} is {len(value)} characters; ids are at most {MAX_ID_LENGTH}"
        )
    if not value.isprintable():
        raise InvalidArgument(f"{field} contains control characters")
    return value


def require_scope(scope: pb.Scope, field: str = "scope") -> pb.Scope:
    """A scope with account, project and user set."""
    for part in ("account_id", "project_id", "user_id"):
        value = getattr(scope, part)
        if not value:
            raise InvalidArgument(f"{field}.{part} is required")
        if len(value) > MAX_SCOPE_PART or not value.isprintable():
            raise InvalidArgument(
                f"{field}.{part} must be printable and at most {MAX_SCOPE_PART} characters"
            )
    return scope


def parse_struct(field: str, struct: struct_pb2.Struct) -> JsonObject:
    """A Struct as a dict, refusing absurd nesting."""
    try:
        return struct_to_dict(struct)
    except StructTooDeep as exc:
        raise InvalidArgument(f"{field} is {exc}") from exc
