"""Retention: delete finished top-level sessions with their whole tree.

Work goes in batches of root sessions, one transaction each, so a large
prune never holds locks (or SQLite's write lock) for long.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from specloom.protoconv import utcnow
from specloom_sessions import tables as t
from specloom_sessions.database import Database
from specloom_sessions.rows import FINISHED
from specloom_sessions.store._common import I, S

O = t.outputs  # noqa: E741 - the table, as in SQL
D = t.session_dependencies
BATCH = 200


@dataclass(frozen=True)
class Pruned:
    """How much was (or would be) deleted."""

    sessions: int = 0
    interactions: int = 0
    output_chunks: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.sessions + other.sessions,
            self.interactions + other.interactions,
            self.output_chunks + other.output_chunks,
        )


def _roots(cutoff: dt.datetime) -> Select[str]:
    return select(S.c.id).where(
        S.c.parent_id.is_(None),
        S.c.finished_at.is_not(None),
        S.c.finished_at < cutoff,
        S.c.status.in_(sorted(FINISHED)),
    )


def _tree(root_ids: list[str]) -> Any:
    tree = select(S.c.id).where(S.c.id.in_(root_ids)).cte("tree", recursive=True)
    return tree.union_all(select(S.c.id).where(S.c.parent_id == tree.c.id))


async def _count(conn: AsyncConnection, root_ids: list[str]) -> tuple[Pruned, list[str]]:
    tree = _tree(root_ids)
    ids = list((await conn.execute(select(tree.c.id))).scalars())
    interactions = (
        await conn.execute(select(func.count()).select_from(I).where(I.c.session_id.in_(ids)))
    ).scalar_one()
    chunks = (
        await conn.execute(select(func.count()).select_from(O).where(O.c.session_id.in_(ids)))
    ).scalar_one()
    return Pruned(len(ids), interactions, chunks), ids


async def prune_sessions(db: Database, older_than_days: int, *, dry_run: bool) -> Pruned:
    """Delete (or count) finished top-level sessions older than the cutoff, with descendants."""
    cutoff = utcnow() - dt.timedelta(days=older_than_days)
    total = Pruned()
    if dry_run:
        async with db.read(snapshot=True) as conn:
            roots = list((await conn.execute(_roots(cutoff))).scalars())
            for start in range(0, len(roots), BATCH):
                counted, _ = await _count(conn, roots[start : start + BATCH])
                total += counted
        return total
    while True:
        async with db.write() as tx:
            roots = list((await tx.conn.execute(_roots(cutoff).limit(BATCH))).scalars())
            if not roots:
                return total
            counted, ids = await _count(tx.conn, roots)
            await tx.conn.execute(delete(O).where(O.c.session_id.in_(ids)))
            await tx.conn.execute(delete(I).where(I.c.session_id.in_(ids)))
            # Siblings share a tree, so every row naming these sessions goes.
            await tx.conn.execute(delete(D).where(D.c.session_id.in_(ids)))
            await tx.conn.execute(delete(S).where(S.c.id.in_(ids)))
            tx.changes.sessions.update(ids)
        total += counted
