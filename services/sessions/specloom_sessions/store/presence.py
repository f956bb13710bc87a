"""Executor presence: which executor streams are open, where, for whom, running what.

Gateways write one row per open stream (at register, on heartbeats at most
once per heartbeat interval, and at teardown) and say how long it stays
live without a refresh. A gateway that dies without its teardown leaves
rows that simply stop being live; they are deleted a day later by the next
write in their project. Presence is advisory: claims never read it (their
filters come from the claiming stream itself); it tells people, and the
unclaimed sweep, whether anything could run a waiting command. The
commands a stream holds are part of its row (people see what each executor
runs), as of the row's last write.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update

from specloom.protoconv import to_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom_sessions import tables as t
from specloom_sessions.database import Database
from specloom_sessions.rows import Row

E = t.executors
I = t.interactions  # noqa: E741 - the table, as in SQL

FORGET_AFTER = dt.timedelta(days=1)
"""Rows stale this long are deleted (a gateway died without its teardown)."""


def _workspaces_json(workspaces: Any) -> str:
    return json.dumps(
        [
            {"id": w.id, "name": w.name, "root_commit": w.root_commit, "remote": w.remote}
            for w in workspaces
        ],
        separators=(",", ":"),
    )


def _commands_json(commands: Sequence[pb.RunningCommand]) -> str:
    return json.dumps(
        [
            {
                "session_id": c.session_id,
                "interaction_id": c.interaction_id,
                "step": c.step,
                "since": c.since.ToJsonString() if c.HasField("since") else "",
            }
            for c in commands
        ],
        separators=(",", ":"),
    )


def _command_of(raw: Mapping[str, str]) -> pb.RunningCommand:
    command = pb.RunningCommand(
        session_id=raw["session_id"], interaction_id=raw["interaction_id"], step=raw["step"]
    )
    if raw["since"]:
        command.since.FromJsonString(raw["since"])
    return command


async def _name_sessions(conn: Any, presence: pb.ExecutorPresence) -> None:
    """Fill in the session and step of commands the gateway knows only by interaction.

    A gateway that took over a lease after the executor reconnected has not
    seen the command's session yet; the interaction row names it (looked up
    within the executor's own project only).
    """
    unnamed = {c.interaction_id: c for c in presence.running_commands if not c.session_id}
    if not unnamed:
        return
    rows = await conn.execute(
        select(I.c.id, I.c.session_id, I.c.step).where(
            I.c.id.in_(list(unnamed)),
            I.c.account_id == presence.scope.account_id,
            I.c.project_id == presence.scope.project_id,
        )
    )
    for interaction_id, session_id, step in rows:
        unnamed[interaction_id].session_id = session_id
        unnamed[interaction_id].step = unnamed[interaction_id].step or step


def presence_of(row: Row) -> pb.ExecutorPresence:
    """An ``executors`` row as the contract's ExecutorPresence."""
    presence = pb.ExecutorPresence(
        connection_id=row["connection_id"],
        executor_id=row["executor_id"],
        scope=pb.Scope(
            account_id=row["account_id"], project_id=row["project_id"], user_id=row["user_id"]
        ),
        name=row["name"],
        workspaces=[pb.WorkspaceRef(**w) for w in json.loads(row["workspaces"])],
        serve=pb.ExecutorServe.ValueType(row["serve"]),
        capabilities=json.loads(row["capabilities"]),
        slots=row["slots"],
        running=row["running"],
        gateway_id=row["gateway_id"],
        connected_at=to_timestamp(row["connected_at"]),
        seen_at=to_timestamp(row["seen_at"]),
        agent_version=row["agent_version"],
        running_commands=[_command_of(c) for c in json.loads(row["running_commands"])],
    )
    presence.labels.update(json.loads(row["labels"]))
    return presence


def _values(presence: pb.ExecutorPresence, now: dt.datetime, live: int) -> dict[str, Any]:
    return {
        "executor_id": presence.executor_id,
        "account_id": presence.scope.account_id,
        "project_id": presence.scope.project_id,
        "user_id": presence.scope.user_id,
        "name": presence.name,
        "serve": int(presence.serve) or pb.EXECUTOR_SERVE_OWN,
        "workspaces": _workspaces_json(presence.workspaces),
        "capabilities": json.dumps(list(presence.capabilities)),
        "labels": json.dumps(dict(sorted(presence.labels.items()))),
        "agent_version": presence.agent_version,
        "slots": presence.slots,
        "running": presence.running,
        "running_commands": _commands_json(presence.running_commands),
        "gateway_id": presence.gateway_id,
        "seen_at": now,
        "expires_at": now + dt.timedelta(seconds=live),
    }


async def record_executor(
    db: Database, presence: pb.ExecutorPresence, live_seconds: int, *, refresh_only: bool
) -> None:
    """Insert or refresh one stream's row (``connected_at`` is kept from the first record)."""
    now = utcnow()
    async with db.write() as tx:
        await _name_sessions(tx.conn, presence)
        values = _values(presence, now, live_seconds)
        refreshed = await tx.conn.execute(
            update(E).where(E.c.connection_id == presence.connection_id).values(values)
        )
        if refreshed.rowcount == 0 and not refresh_only:
            await tx.conn.execute(
                insert(E).values(connection_id=presence.connection_id, connected_at=now, **values)
            )
            # Registers are rare (a stream's start): the moment to drop rows
            # of this project whose gateway vanished without a teardown.
            await tx.conn.execute(
                delete(E).where(
                    E.c.account_id == presence.scope.account_id,
                    E.c.project_id == presence.scope.project_id,
                    E.c.expires_at < now - FORGET_AFTER,
                )
            )


async def forget_executor(db: Database, connection_id: str) -> bool:
    """Delete one stream's row; False when there was none."""
    async with db.write() as tx:
        done = await tx.conn.execute(delete(E).where(E.c.connection_id == connection_id))
    return bool(done.rowcount)


async def live_rows(conn: Any, account_id: str, project_id: str) -> list[Row]:
    """The live rows of one project (``conn``: an open connection)."""
    rows = await conn.execute(
        select(*E.c)
        .where(
            E.c.account_id == account_id,
            E.c.project_id == project_id,
            E.c.expires_at > utcnow(),
        )
        .order_by(E.c.user_id, E.c.name, E.c.connection_id)
    )
    result: list[Row] = list(rows.mappings().all())
    return result


async def query_executors(db: Database, scope: pb.Scope) -> list[pb.ExecutorPresence]:
    """The live executors of ``scope``'s project."""
    async with db.read() as conn:
        rows = await live_rows(conn, scope.account_id, scope.project_id)
    return [presence_of(row) for row in rows]


def workspace_ids(row: Mapping[str, Any]) -> frozenset[str]:
    """The workspace ids a presence row serves."""
    return frozenset(w["id"] for w in json.loads(row["workspaces"]))
