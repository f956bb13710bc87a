"""Request checks shared by servicers: each failure names the field."""

from __future__ import annotations

import re
from collections.abc import Sequence

from google.protobuf import struct_pb2

from specloom.errors import InvalidArgument
from specloom.ids import MAX_ID_LENGTH
from specloom.protoconv import JsonObject, StructTooDeep, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import MAX_NAME as MAX_WORKSPACE_NAME
from specloom.workspaces import is_workspace_id

MAX_SCOPE_PART = 128
MAX_WORKSPACES = 64
"""Workspaces one executor may serve."""
MAX_REMOTE = 1000
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


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


def require_workspace_id(field: str, value: str) -> str:
    """A well-formed workspace id (``ws-`` and 12 hex digits)."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    if not is_workspace_id(value):
        raise InvalidArgument(
            f'{field} {value[:80]!r} is not a workspace id ("ws-" and 12 hex '
            "digits; `specloom workspace` prints this repository's)"
        )
    return value


def require_workspace(field: str, workspace: pb.WorkspaceRef) -> pb.WorkspaceRef:
    """A WorkspaceRef with a well-formed id and sane display fields."""
    require_workspace_id(f"{field}.id", workspace.id)
    if len(workspace.name) > MAX_WORKSPACE_NAME or not workspace.name.isprintable():
        raise InvalidArgument(
            f"{field}.name must be printable and at most {MAX_WORKSPACE_NAME} characters"
        )
    if workspace.root_commit and not _COMMIT.match(workspace.root_commit):
        raise InvalidArgument(f"{field}.root_commit is not a commit id")
    if len(workspace.remote) > MAX_REMOTE or not workspace.remote.isprintable():
        raise InvalidArgument(
            f"{field}.remote must be printable and at most {MAX_REMOTE} characters"
        )
    return workspace


def require_workspaces(field: str, workspaces: Sequence[pb.WorkspaceRef]) -> None:
    """At most :data:`MAX_WORKSPACES` distinct, valid WorkspaceRefs."""
    if len(workspaces) > MAX_WORKSPACES:
        raise InvalidArgument(f"{field} lists {len(workspaces)}; at most {MAX_WORKSPACES}")
    seen: set[str] = set()
    for index, workspace in enumerate(workspaces):
        require_workspace(f"{field}[{index}]", workspace)
        if workspace.id in seen:
            raise InvalidArgument(f"{field}[{index}]: workspace {workspace.id} is listed twice")
        seen.add(workspace.id)
