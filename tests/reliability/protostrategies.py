"""Hypothesis strategies for any protobuf message, built from its descriptor.

Every field gets values a careless or hostile client could send: any text
(or an id from a pool of real ones, so calls get past "not found" and reach
deeper code), any bytes, integers across the whole range of the field's
type, enum numbers the schema does not define, nested messages, ``Struct``
values nested past the server's depth limit, timestamps out of range, and
each ``oneof`` set to one of its fields or to none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

T = FieldDescriptor

_INTS: dict[int, tuple[int, int]] = {
    T.TYPE_INT32: (-(2**31), 2**31 - 1),
    T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    T.TYPE_INT64: (-(2**63), 2**63 - 1),
    T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    T.TYPE_UINT32: (0, 2**32 - 1),
    T.TYPE_FIXED32: (0, 2**32 - 1),
    T.TYPE_UINT64: (0, 2**64 - 1),
    T.TYPE_FIXED64: (0, 2**64 - 1),
}


def _small_ints(low: int, high: int) -> st.SearchStrategy[int]:
    # Mostly the values code branches on (0, ±1, small counts), sometimes extremes.
    near = st.integers(max(low, -3), min(high, 600))
    return st.one_of(near, near, st.sampled_from([low, high]), st.integers(low, high))


def json_values(depth: int) -> st.SearchStrategy[Any]:
    """JSON-like values nested up to ``depth`` levels."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**53), 2**53),
        st.text(max_size=20),
    )
    if depth <= 0:
        return leaves
    inner = json_values(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    )


def nested(depth: int) -> dict[str, Any]:
    """A dict nested ``depth`` levels deep."""
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        value = {"n": value}
    return value


@st.composite
def structs(draw: st.DrawFn) -> struct_pb2.Struct:
    """A Struct: ordinary JSON, or nested around (and past) the 32-level limit."""
    struct = struct_pb2.Struct()
    shape = draw(st.sampled_from(["json", "json", "json", "deep"]))
    if shape == "deep":
        struct.update({"deep": nested(draw(st.integers(25, 90)))})
    else:
        struct.update(draw(st.dictionaries(st.text(max_size=12), json_values(3), max_size=4)))
    return struct


def timestamps() -> st.SearchStrategy[timestamp_pb2.Timestamp]:
    """Timestamps, valid or far outside what a calendar holds."""
    return st.builds(
        timestamp_pb2.Timestamp,
        seconds=st.one_of(st.integers(0, 4_102_444_800), st.integers(-(2**62), 2**62)),
        nanos=st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1)),
    )


HOSTILE_TEXT = ["", " ", "../../etc/passwd", "a" * 65, "'; DROP TABLE sessions;--", "$(id)"]


class Generator:
    """Strategies for messages.

    ``pools`` maps a field name (``session_id``, ``type``...) to real values
    drawn for it most of the time, so calls get past "not found";
    ``structs`` maps a Struct field name (``params``) to a strategy of its
    own, so workflows get inputs they might act on.
    """

    def __init__(
        self,
        pools: Mapping[str, Sequence[str]] | None = None,
        structs: Mapping[str, st.SearchStrategy[struct_pb2.Struct]] | None = None,
        max_depth: int = 4,
    ) -> None:
        self.pools = {name: list(values) for name, values in (pools or {}).items() if values}
        self.structs = dict(structs or {})
        self.max_depth = max_depth

    def text(self, name: str = "") -> st.SearchStrategy[str]:
        texts = [
            st.text(max_size=40),
            st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=300),
            st.sampled_from(HOSTILE_TEXT),
        ]
        if name in self.pools:
            texts += [st.sampled_from(self.pools[name])] * 6
        return st.one_of(*texts)

    def scalar(self, field: FieldDescriptor) -> st.SearchStrategy[Any]:
        kind = field.type
        if kind == T.TYPE_STRING:
            return self.text(field.name)
        if kind == T.TYPE_BYTES:
            return st.binary(max_size=300)
        if kind == T.TYPE_BOOL:
            return st.booleans()
        if kind in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
            return st.floats(width=32 if kind == T.TYPE_FLOAT else 64)
        if kind == T.TYPE_ENUM:
            assert field.enum_type is not None
            known = [v.number for v in field.enum_type.values]
            return st.one_of(st.sampled_from(known), _small_ints(-(2**31), 2**31 - 1))
        low, high = _INTS[kind]
        return _small_ints(low, high)

    def value(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if field.message_type is None:
            return self.scalar(field)
        if field.message_type.full_name == "google.protobuf.Struct" and field.name in self.structs:
            return st.one_of(self.structs[field.name], structs())
        return self.message(field.message_type, depth + 1)

    def message(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        """Instances of ``descriptor``'s message class."""
        if descriptor.full_name == "google.protobuf.Struct":
            return structs()
        if descriptor.full_name == "google.protobuf.Timestamp":
            return timestamps()
        cls = GetMessageClass(descriptor)
        if depth > self.max_depth:
            return st.just(cls())
        return _messages(self, descriptor, cls, depth)


@st.composite
def _messages(
    draw: st.DrawFn, gen: Generator, descriptor: Descriptor, cls: type[Message], depth: int
) -> Message:
    message = cls()
    chosen = {
        oneof.name: draw(st.sampled_from([None, *[f.name for f in oneof.fields]]))
        for oneof in descriptor.oneofs
    }
    for field in descriptor.fields:
        if field.containing_oneof is not None:
            if chosen[field.containing_oneof.name] != field.name:
                continue
        elif draw(st.integers(0, 3)) == 0:
            continue  # left unset
        _fill(draw, gen, message, field, depth)
    return message


def _fill(
    draw: st.DrawFn, gen: Generator, message: Message, field: FieldDescriptor, depth: int
) -> None:
    target: Any = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        entries = draw(
            st.dictionaries(gen.scalar(key_field), gen.value(value_field, depth), max_size=3)
        )
        for key, value in entries.items():
            if value_field.type == T.TYPE_MESSAGE:
                target[key].CopyFrom(value)
            else:
                target[key] = value
        return
    if field.is_repeated:
        values = draw(st.lists(gen.value(field, depth), max_size=3))
        if field.type == T.TYPE_MESSAGE:
            for value in values:
                target.add().CopyFrom(value)
        else:
            target.extend(values)
        return
    value = draw(gen.value(field, depth))
    if field.type == T.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)
