"""Pieces every aggregate's queries share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from specloom.ids import new_id
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.workflow._proto import result_digest
from specloom_sessions import tables as t
from specloom_sessions.rows import (
    INTERACTION_COLUMNS,
    SESSION_HEAD_COLUMNS,
    Row,
    interaction_of,
    session_of,
)

S = t.sessions
I = t.interactions  # noqa: E741 - the table, as in SQL

_LAST_PREFIX = "last_"


def const(value: int) -> ColumnElement[int]:
    """An integer written into the SQL text rather than bound.

    Partial indexes have constant predicates (``status = 1 AND dispatch =
    1``); PostgreSQL can use them for a prepared statement's generic plan
    only when the query states the same constants.
    """
    return literal_column(str(int(value)), Integer)


def in_scope(scope: pb.Scope) -> ColumnElement[bool]:
    """The scope wall on ``sessions``: every query of a session goes through it."""
    return and_(S.c.account_id == scope.account_id, S.c.project_id == scope.project_id)


async def head_row(
    conn: AsyncConnection, scope: pb.Scope, session_id: str, *, lock: bool = False
) -> Row | None:
    """A session row in ``scope``, or None; ``lock`` holds it (PostgreSQL) until commit."""
    query = select(*SESSION_HEAD_COLUMNS).where(S.c.id == session_id, in_scope(scope))
    if lock:
        query = query.with_for_update()
    result = await conn.execute(query)
    return result.mappings().first()


def with_last(query: Select[Any]) -> Select[Any]:
    """``query`` over sessions, joined to each session's newest interaction.

    Seqs are dense, so the newest interaction is ``seq = interaction_count``:
    a primary-key lookup, the same cost at any history length.
    """
    return query.add_columns(
        *(c.label(_LAST_PREFIX + c.name) for c in INTERACTION_COLUMNS)
    ).outerjoin(I, and_(I.c.session_id == S.c.id, I.c.seq == S.c.interaction_count))


def last_of(row: Row) -> Row | None:
    """The newest-interaction part of a :func:`with_last` row."""
    if row[_LAST_PREFIX + "id"] is None:
        return None
    return {c.name: row[_LAST_PREFIX + c.name] for c in INTERACTION_COLUMNS}


def interaction_values(
    item: spb.NewInteraction,
    *,
    session_id: str,
    seq: int,
    account_id: str,
    project_id: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """The ``interactions`` row for a new interaction."""
    done = item.HasField("immediate_result")
    values: dict[str, Any] = {
        "session_id": session_id,
        "seq": seq,
        "id": new_id(),
        "account_id": account_id,
        "project_id": project_id,
        "step": item.step,
        "status": pb.INTERACTION_STATUS_COMPLETED if done else pb.INTERACTION_STATUS_PENDING,
        "dispatch": int(item.dispatch),
        "required_capability": item.required_capability,
        "command": item.command.SerializeToString(),
        "result": item.immediate_result.SerializeToString() if done else None,
        "reported_digest": result_digest(item.immediate_result) if done else None,
        "lease_owner": None,
        "lease_epoch": 0,
        "lease_expires_at": None,
        "output_bytes": 0,
        "output_chunks": 0,
        "created_at": now,
        "completed_at": now if done else None,
    }
    if item.HasField("lease"):
        values["lease_owner"] = item.lease.executor_id
        values["lease_epoch"] = 1
        values["lease_expires_at"] = now + dt.timedelta(seconds=item.lease.ttl_seconds)
    return values


def is_pending(item: spb.NewInteraction) -> bool:
    """True for a command that waits for a result (not a completed record)."""
    return not item.HasField("immediate_result")


def work_of(
    account_id: str, project_id: str, items: Iterable[spb.NewInteraction]
) -> set[tuple[str, str, bool]]:
    """Work signals for newly appended interactions."""
    signals: set[tuple[str, str, bool]] = set()
    for item in items:
        if not is_pending(item):
            continue
        if item.dispatch == spb.DISPATCH_EXECUTOR and not item.HasField("lease"):
            signals.add((account_id, project_id, False))
        elif item.dispatch == spb.DISPATCH_JOIN:
            signals.add((account_id, project_id, True))
    return signals


async def children_with_last(conn: AsyncConnection, parent_id: str) -> list[pb.Session]:
    """Every child of ``parent_id``, oldest first, each with its newest interaction.

    The shape of an orchestrator's head read (``FetchSession``, view LAST),
    so the orchestrator that spawned them can keep them without reading
    each child again when its first result comes in.
    """
    result = await conn.execute(
        with_last(select(*SESSION_HEAD_COLUMNS))
        .where(S.c.parent_id == parent_id)
        .order_by(S.c.created_at, S.c.id)
    )
    children: list[pb.Session] = []
    for row in result.mappings():
        child = session_of(row)
        last = last_of(row)
        if last is not None:
            child.interactions.append(interaction_of(last))
        children.append(child)
    return children


async def children_rows(conn: AsyncConnection, parent_id: str) -> Sequence[Row]:
    """Every child of ``parent_id``, oldest first (the caller checked the parent's scope)."""
    result = await conn.execute(
        select(*SESSION_HEAD_COLUMNS)
        .where(S.c.parent_id == parent_id)
        .order_by(S.c.created_at, S.c.id)
    )
    return result.mappings().all()
