"""Stored rows as contract messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from specloom.protoconv import to_timestamp
from specloom.v1 import common_pb2 as pb
from specloom_sessions import tables as t

TERMINAL = frozenset({pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_CANCELLED})
"""Statuses a session never leaves."""
FINISHED = frozenset({*TERMINAL, pb.SESSION_STATUS_FAILED})
"""Statuses that stamp ``finished_at`` and count as done for a parent's join."""

Row = Mapping[Any, Any]

SESSION_HEAD_COLUMNS = tuple(t.sessions.c)
INTERACTION_COLUMNS = tuple(
    c for c in t.interactions.c if c.name not in ("account_id", "project_id")
)


def _stamp(target: Any, field: str, when: dt.datetime | None) -> None:
    stamp = to_timestamp(when)
    if stamp is not None:
        getattr(target, field).CopyFrom(stamp)


def session_of(row: Row) -> pb.Session:
    """A session head (no interactions) from a ``sessions`` row."""
    session = pb.Session(
        id=row["id"],
        type=row["type"],
        status=pb.SessionStatus.ValueType(row["status"]),
        execution_mode=pb.ExecutionMode.ValueType(row["execution_mode"]),
        parent_id=row["parent_id"] or "",
        scope=pb.Scope(
            account_id=row["account_id"], project_id=row["project_id"], user_id=row["user_id"]
        ),
        name=row["name"],
        version=row["version"],
        definition_version=row["definition_version"],
        status_reason=row["status_reason"],
        idempotency_key=row["idempotency_key"] or "",
        interaction_count=row["interaction_count"],
    )
    session.component.ParseFromString(row["component"])
    session.params.ParseFromString(row["params"])
    session.state.ParseFromString(row["state"])
    session.progress.ParseFromString(row["progress"])
    _stamp(session, "created_at", row["created_at"])
    _stamp(session, "updated_at", row["updated_at"])
    _stamp(session, "finished_at", row["finished_at"])
    if row["workspace_id"]:
        session.workspace.ParseFromString(row["workspace"] or b"")
        session.workspace.id = row["workspace_id"]
    if row.get("usage_agent_steps"):
        session.usage.CopyFrom(usage_of_row(row))
    return session


def usage_of_row(row: Row) -> pb.Usage:
    """The ``usage_*`` columns of a ``sessions`` row, or their sums (cost in micro-dollars)."""
    value = {name: int(row[name] or 0) for name in t.USAGE_COLUMNS}
    return pb.Usage(
        input_tokens=value["usage_input_tokens"],
        output_tokens=value["usage_output_tokens"],
        cache_creation_input_tokens=value["usage_cache_creation_tokens"],
        cache_read_input_tokens=value["usage_cache_read_tokens"],
        cost_usd=value["usage_cost_micros"] / 1_000_000,
        turns=value["usage_turns"],
        duration_ms=value["usage_duration_ms"],
        retries=value["usage_retries"],
        agent_steps=value["usage_agent_steps"],
        unpriced_steps=value["usage_unpriced_steps"],
    )


def workspace_values(workspace: pb.WorkspaceRef | None) -> dict[str, Any]:
    """The ``sessions`` columns of a session's workspace (None: not pinned yet)."""
    if workspace is None or not workspace.id:
        return {"workspace_id": None, "workspace": None}
    return {"workspace_id": workspace.id, "workspace": workspace.SerializeToString()}


def interaction_of(row: Row) -> pb.Interaction:
    """An interaction from an ``interactions`` row."""
    interaction = pb.Interaction(
        id=row["id"],
        seq=row["seq"],
        step=row["step"],
        status=pb.InteractionStatus.ValueType(row["status"]),
    )
    interaction.command.ParseFromString(row["command"])
    if row["result"] is not None:
        interaction.result.ParseFromString(row["result"])
    _stamp(interaction, "created_at", row["created_at"])
    _stamp(interaction, "completed_at", row["completed_at"])
    # Only a pending interaction can be held; after the result the lease
    # columns stay in the row as an audit trail but are not a lease.
    if row["status"] == pb.INTERACTION_STATUS_PENDING and row["lease_owner"] is not None:
        interaction.lease.CopyFrom(
            pb.Lease(
                executor_id=row["lease_owner"],
                epoch=row["lease_epoch"],
                expires_at=to_timestamp(row["lease_expires_at"]),
            )
        )
    return interaction


def bare(session: pb.Session) -> pb.Session:
    """A copy of ``session`` without interactions."""
    copy = pb.Session()
    copy.CopyFrom(session)
    del copy.interactions[:]
    return copy
