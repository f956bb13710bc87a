"""What an active session's unclaimed command waits for (``Session.waiting_for``).

A session whose pending executor command nobody holds is either queued
(a live executor could claim it, it is just busy) or stuck: no live
executor serves its workspace, runs its owner's sessions, or has the
capability the command needs. People see the second as "waiting for an
executor of workspace api (ws-…)" instead of "running", and the gateway's
unclaimed sweep pauses the session with that reason.

The rules mirror the claim's (:mod:`.leases`), read from the presence rows
(:mod:`.presence`). Only reads for people ask for it: two small queries per
read, never on an orchestrator's path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, tuple_

from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.workspaces import label
from specloom_sessions.rows import Row
from specloom_sessions.store._common import I
from specloom_sessions.store.presence import live_rows, workspace_ids


def _workspace(row: Row) -> pb.WorkspaceRef | None:
    if not row["workspace_id"]:
        return None
    workspace = pb.WorkspaceRef()
    workspace.ParseFromString(row["workspace"] or b"")
    workspace.id = row["workspace_id"]
    return workspace


def waiting_reason(row: Row, capability: str, executors: Sequence[Row]) -> str:
    """What session ``row``'s command (needing ``capability``) waits for; "" if claimable."""
    workspace = _workspace(row)
    in_place = [e for e in executors if workspace is None or workspace.id in workspace_ids(e)]
    for_owner = [
        e
        for e in in_place
        if e["serve"] == pb.EXECUTOR_SERVE_PROJECT or e["user_id"] == row["user_id"]
    ]
    capable = [
        e for e in for_owner if not capability or capability in json.loads(e["capabilities"])
    ]
    if capable:
        return ""
    wanted = "an executor" + (f" of workspace {label(workspace)}" if workspace else "")
    needs = f" with the {capability!r} capability" if capability else ""
    if not in_place:
        # The workspace is what matters most; without one, the capability.
        return wanted if workspace else wanted + needs
    if not for_owner:
        return f"{wanted} serving {row['user_id']}'s sessions"
    return wanted + needs


async def explain(conn: Any, rows: Sequence[Row]) -> dict[str, str]:
    """``waiting_for`` of each session row that has one, by session id."""
    waiting = [
        row
        for row in rows
        if row["status"] == pb.SESSION_STATUS_ACTIVE and row["pending_seq"] is not None
    ]
    if not waiting:
        return {}
    keys = [(row["id"], row["pending_seq"]) for row in waiting]
    now = utcnow()
    pending = await conn.execute(
        select(I.c.session_id, I.c.required_capability).where(
            tuple_(I.c.session_id, I.c.seq).in_(keys),
            I.c.status == pb.INTERACTION_STATUS_PENDING,
            I.c.dispatch == spb.DISPATCH_EXECUTOR,
            (I.c.lease_owner.is_(None)) | (I.c.lease_expires_at <= now),
        )
    )
    unclaimed = {session_id: capability for session_id, capability in pending}
    if not unclaimed:
        return {}
    # Reads for people hold one project; the unclaimed sweep may hold several.
    executors: dict[tuple[str, str], Sequence[Row]] = {}
    reasons: dict[str, str] = {}
    for row in waiting:
        if row["id"] not in unclaimed:
            continue
        project = (row["account_id"], row["project_id"])
        if project not in executors:
            executors[project] = await live_rows(conn, *project)
        reason = waiting_reason(row, unclaimed[row["id"]], executors[project])
        if reason:
            reasons[row["id"]] = reason
    return reasons


def fill(sessions: Sequence[pb.Session], reasons: dict[str, str]) -> None:
    """Write ``reasons`` into the sessions they belong to."""
    for session in sessions:
        session.waiting_for = reasons.get(session.id, "")
