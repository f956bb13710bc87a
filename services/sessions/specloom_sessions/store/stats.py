"""Database-wide figures for the metrics gauges: sessions by status, the work queue.

Both read only what an index already holds: sessions by status from
``ix_sessions_status_updated``, pending work from the partial indexes of
claimable commands and joins (the constants are written into the SQL so
PostgreSQL can match the index predicates).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select

from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions.database import Database
from specloom_sessions.store._common import I, S, const

DISPATCH_KINDS = {spb.DISPATCH_EXECUTOR: "executor", spb.DISPATCH_JOIN: "join"}
"""Dispatchable work, by the name the metrics use."""
LEASE_STATES = ("unleased", "held", "expired")


@dataclass(frozen=True)
class Figures:
    """One reading of the database."""

    sessions: dict[int, int]
    """Sessions by ``SessionStatus`` value."""
    queue: dict[tuple[str, str], int]
    """Pending dispatchable interactions by (dispatch kind, lease state)."""


async def read_figures(db: Database) -> Figures:
    """Count sessions by status and pending work by kind and lease state."""
    now = utcnow()
    lease = case(
        (I.c.lease_owner.is_(None), "unleased"),
        (I.c.lease_expires_at <= now, "expired"),
        else_="held",
    ).label("lease")
    by_status = select(S.c.status, func.count()).group_by(S.c.status)
    async with db.read() as conn:
        sessions = {int(status): int(count) for status, count in await conn.execute(by_status)}
        queue: dict[tuple[str, str], int] = {}
        for dispatch, kind in DISPATCH_KINDS.items():
            pending = (
                select(lease, func.count())
                .where(
                    I.c.status == const(pb.INTERACTION_STATUS_PENDING),
                    I.c.dispatch == const(dispatch),
                )
                .group_by(lease)
            )
            for state, count in await conn.execute(pending):
                queue[(kind, str(state))] = int(count)
    return Figures(sessions=sessions, queue=queue)
