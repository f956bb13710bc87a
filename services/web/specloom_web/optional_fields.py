"""Parts of the API that other work adds: read when present, absent otherwise.

Issue 12 (workspaces) adds ``Session.workspace`` and a ``ListExecutors``
RPC; issue 14 (usage and cost) adds token counts and cost per step and per
session. The console is built against today's contract, so each of those
is looked up here, by name, through the protobuf descriptors: a field or
method that does not exist yet reads as ``None`` and its part of a page is
left out (or, for the executors page, says the API has no such call yet).

This module is the one place to wire them once they land: replace each
lookup with the real typed field and drop the guesses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.message import Message

from specloom.protoconv import JsonValue, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb

WORKSPACE_FIELDS = ("workspace", "workspace_id")
"""Names issue 12 may give the session's workspace (a string or a message)."""
USAGE_FIELDS = ("usage",)
"""Names issue 14 may give the usage record on Session, Interaction or Result."""
USAGE_DATA_KEYS = ("usage",)
"""Keys under ``Result.data`` where a backend may record usage instead."""
LIST_EXECUTORS = "ListExecutors"
"""The RPC issue 12 adds to GatewayService."""


@dataclass(frozen=True)
class Usage:
    """Tokens, cost and the like, as label → value pairs in the API's order."""

    items: tuple[tuple[str, str], ...]

    def __bool__(self) -> bool:
        return bool(self.items)


def _field(message: Message, names: tuple[str, ...]) -> tuple[str, object] | None:
    fields = message.DESCRIPTOR.fields_by_name
    for name in names:
        descriptor = fields.get(name)
        if descriptor is None:
            continue
        if descriptor.message_type is not None and not message.HasField(name):
            return None
        return name, getattr(message, name)
    return None


def workspace_of(session: pb.Session) -> str | None:
    """The session's workspace label, or None (no such field yet, or unset)."""
    found = _field(session, WORKSPACE_FIELDS)
    if found is None:
        return None
    value = found[1]
    if isinstance(value, str):
        return value or None
    if isinstance(value, Message):
        for name in ("name", "id", "root"):
            if name in value.DESCRIPTOR.fields_by_name and getattr(value, name):
                return str(getattr(value, name))
    return None


def has_workspace_field() -> bool:
    """Whether this build's Session message has a workspace (the list's column)."""
    fields = pb.Session.DESCRIPTOR.fields_by_name
    return any(name in fields for name in WORKSPACE_FIELDS)


def _label(name: str) -> str:
    return name.replace("_", " ")


def _usage_items(values: Mapping[str, JsonValue]) -> Usage:
    items: list[tuple[str, str]] = []
    for key, value in values.items():
        if value in (None, "", 0) or isinstance(value, dict | list):
            continue
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        items.append((_label(key), text))
    return Usage(tuple(items))


def usage_of(message: pb.Session | pb.Interaction) -> Usage | None:
    """Usage recorded on a session or a step, or None where the API has none."""
    found = _field(message, USAGE_FIELDS)
    if found is not None and isinstance(found[1], Message):
        usage = found[1]
        values: dict[str, JsonValue] = {}
        for descriptor, value in usage.ListFields():
            if isinstance(value, str | int | float | bool):
                values[descriptor.name] = value
        return _usage_items(values) or None
    if isinstance(message, pb.Interaction) and message.HasField("result"):
        data = struct_to_dict(message.result.data)
        for key in USAGE_DATA_KEYS:
            recorded = data.get(key)
            if isinstance(recorded, dict):
                return _usage_items(recorded) or None
    return None


def has_list_executors() -> bool:
    """Whether this build's GatewayService has the ListExecutors call."""
    service = gpb.DESCRIPTOR.services_by_name["GatewayService"]
    return LIST_EXECUTORS in service.methods_by_name
