"""Conversions between protobuf well-known types and plain Python values.

``google.protobuf.Struct`` stores every number as a double, so ``3`` comes
back as ``3.0``. Workflow state is full of counters and lists of ids; the
helpers here turn integral doubles back into ``int`` so domain code never
sees ``3.0 == 3`` surprises, and they refuse values a Struct cannot hold
instead of silently stringifying them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from google.protobuf import struct_pb2, timestamp_pb2

# Covariant containers, so a ``list[str]`` or ``dict[str, int]`` is a JsonValue
# without annotations at every call site; values read back from a Struct are
# always plain ``list``/``dict``.
JsonValue: TypeAlias = (
    bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None
)
JsonObject: TypeAlias = dict[str, JsonValue]

MAX_STRUCT_DEPTH = 32
"""Deepest nesting accepted in a Struct from a caller (deeper: INVALID_ARGUMENT)."""


class StructTooDeep(ValueError):
    """A Struct nests deeper than :data:`MAX_STRUCT_DEPTH`."""


def _from_value(value: struct_pb2.Value, depth: int) -> JsonValue:
    if depth > MAX_STRUCT_DEPTH:
        raise StructTooDeep(f"nested deeper than {MAX_STRUCT_DEPTH} levels")
    kind = value.WhichOneof("kind")
    if kind == "null_value" or kind is None:
        return None
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "list_value":
        return [_from_value(item, depth + 1) for item in value.list_value.values]
    return {key: _from_value(item, depth + 1) for key, item in value.struct_value.fields.items()}


def struct_to_dict(struct: struct_pb2.Struct) -> JsonObject:
    """Return a Struct as a dict, integral numbers as ``int``.

    Raises :class:`StructTooDeep` when the Struct nests too deeply.
    """
    return {key: _from_value(item, 1) for key, item in struct.fields.items()}


def _fill_value(target: struct_pb2.Value, value: Any, depth: int) -> None:
    if depth > MAX_STRUCT_DEPTH:
        raise StructTooDeep(f"nested deeper than {MAX_STRUCT_DEPTH} levels")
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int | float):
        target.number_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, Mapping):
        fields = target.struct_value.fields
        target.struct_value.SetInParent()
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"Struct keys must be strings, got {type(key).__name__}")
            _fill_value(fields[key], item, depth + 1)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        target.list_value.SetInParent()
        for item in value:
            _fill_value(target.list_value.values.add(), item, depth + 1)
    else:
        raise TypeError(f"a Struct cannot hold a {type(value).__name__}")


def dict_to_struct(
    data: Mapping[str, Any], into: struct_pb2.Struct | None = None
) -> struct_pb2.Struct:
    """Return ``data`` as a Struct (filled into ``into`` when given)."""
    struct = into if into is not None else struct_pb2.Struct()
    struct.Clear()
    for key, item in data.items():
        if not isinstance(key, str):
            raise TypeError(f"Struct keys must be strings, got {type(key).__name__}")
        _fill_value(struct.fields[key], item, 1)
    return struct


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def to_timestamp(when: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    """Return a Timestamp for an aware datetime (``None`` passes through)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> dt.datetime:
    """Return an aware UTC datetime for a Timestamp."""
    return stamp.ToDatetime(tzinfo=dt.UTC)
