"""AI usage kept per session, and summed over a session's subtree.

A completed agent step's ``Result.usage`` is added to its own session's
``usage_*`` columns by the step's guard (the session-row update every step
makes anyway, so it costs nothing extra and is undone with a rolled-back
step). Parents' rows are never touched by their children's steps: a
session's total with its descendants is one indexed recursive query at read
time, asked for only by reads of one session for people.
"""

from __future__ import annotations

import math

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from specloom.v1 import common_pb2 as pb
from specloom_sessions.rows import usage_of_row
from specloom_sessions.store._common import S
from specloom_sessions.tables import USAGE_COLUMNS

__all__ = ["deltas", "total_usage"]

MICROS = 1_000_000


def deltas(usage: pb.Usage) -> dict[str, int]:
    """What one step's usage adds to each ``usage_*`` column."""
    cost = usage.cost_usd if math.isfinite(usage.cost_usd) else 0.0
    return {
        "usage_input_tokens": usage.input_tokens,
        "usage_output_tokens": usage.output_tokens,
        "usage_cache_creation_tokens": usage.cache_creation_input_tokens,
        "usage_cache_read_tokens": usage.cache_read_input_tokens,
        "usage_cost_micros": round(cost * MICROS),
        "usage_turns": usage.turns,
        "usage_duration_ms": usage.duration_ms,
        "usage_retries": usage.retries,
        "usage_agent_steps": usage.agent_steps,
        "usage_unpriced_steps": usage.unpriced_steps,
    }


async def total_usage(conn: AsyncConnection, session_id: str) -> pb.Usage:
    """``session_id``'s usage summed with every descendant's."""
    tree = select(S.c.id).where(S.c.id == session_id).cte("usage_tree", recursive=True)
    tree = tree.union_all(select(S.c.id).where(S.c.parent_id == tree.c.id))
    sums = [func.coalesce(func.sum(S.c[name]), 0).label(name) for name in USAGE_COLUMNS]
    row = (await conn.execute(select(*sums).where(S.c.id.in_(select(tree.c.id))))).mappings()
    summed = row.one()
    return usage_of_row(summed) if summed["usage_agent_steps"] else pb.Usage()
