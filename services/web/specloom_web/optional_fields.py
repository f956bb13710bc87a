"""Parts of the API that other work adds: read when present, absent otherwise.

Issue 12 (workspaces) adds ``Session.workspace`` and a ``ListExecutors``
RPC. The console is built against the contract as it is, so each of those
is looked up here, by name, through the protobuf descriptors: a field or
method that does not exist yet reads as ``None`` and its part of a page is
left out (or, for the executors page, says the API has no such call yet).

This module is the one place to wire them once they land: replace each
lookup with the real typed field and drop the guesses. (Usage and cost,
issue 14, have landed and are read typed, in ``usage``.)
"""

from __future__ import annotations

from google.protobuf.message import Message

from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb

WORKSPACE_FIELDS = ("workspace", "workspace_id")
"""Names issue 12 may give the session's workspace (a string or a message)."""
LIST_EXECUTORS = "ListExecutors"
"""The RPC issue 12 adds to GatewayService."""


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


def has_list_executors() -> bool:
    """Whether this build's GatewayService has the ListExecutors call."""
    service = gpb.DESCRIPTOR.services_by_name["GatewayService"]
    return LIST_EXECUTORS in service.methods_by_name
