"""specloom's step overhead: sessions of N no-op steps through the full path.

executor stream → gateway → orchestrator → Sessions → database, with
:class:`bench.executors.Fleet` answering every command at once. ``C`` slots
each start ``BenchNoop`` sessions (agentic, so the gateway dispatches them)
back to back; a slot moves on when its executor has answered the session's
last command. The step log comes from the executors, so the figures are
summarised exactly as the peers' are.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.cluster import Cluster
from bench.executors import Fleet
from bench.measure import StepLog, StepStats, now, summarize
from bench.workflows import NOOP_TYPE
from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb

MAX_EXECUTORS = 16
"""Executor streams per run: enough that dispatch spreads work, few enough
that the harness's own event loop is not the bottleneck."""


@dataclass
class Completion:
    """Which sessions have had their last command answered."""

    steps: int
    seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    done: dict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))

    def on_assignment(self, assignment: gpb.CommandAssignment, _at: float) -> None:
        """Count a command; the last one completes the session's slot."""
        session_id = assignment.session.id
        self.seen[session_id] += 1
        if self.seen[session_id] >= self.steps:
            self.done[session_id].set()


@dataclass(frozen=True)
class LevelRun:
    """One concurrency level."""

    mode: str
    concurrency: int
    stats: StepStats
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain form."""
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "stats": self.stats.to_json(),
            "meta": self.meta,
        }


async def drive(
    cluster: Cluster,
    concurrency: int,
    steps: int,
    *,
    per_slot: int = 1,
    until: float | None = None,
    limit_s: float = 600.0,
) -> tuple[StepLog, dict[str, Any]]:
    """Run ``concurrency`` slots of ``steps``-step sessions; return the step log.

    Each slot runs ``per_slot`` sessions, or with ``until`` (a :func:`now`
    deadline) keeps starting sessions until it passes.
    """
    executors = min(concurrency, MAX_EXECUTORS)
    per_executor = math.ceil(concurrency / executors)
    completion = Completion(steps)
    fleet = Fleet(cluster.gateway, cluster.token)
    await fleet.connect(executors, per_executor, listener=completion.on_assignment)
    run = uuid.uuid4().hex[:8]
    started: list[str] = []
    try:
        async with Client(cluster.gateway, cluster.token) as client:

            async def slot(index: int) -> None:
                n = 0
                while (until is None and n < per_slot) or (until is not None and now() < until):
                    response = await client.start_session(
                        NOOP_TYPE,
                        {"ticks": steps},
                        mode="agentic",
                        idempotency_key=f"{run}-{index}-{n}",
                    )
                    session_id = response.session.id
                    started.append(session_id)
                    await completion.done[session_id].wait()
                    n += 1

            await asyncio.wait_for(asyncio.gather(*(slot(i) for i in range(concurrency))), limit_s)
            # Every session must really have finished: a benchmark of steps
            # the system did not record would be worth nothing.
            sample = started[:: max(1, len(started) // 20)]
            await _check_complete(client, sample)
    finally:
        refused = sum(e.refused for e in fleet.executors)
        await fleet.close()
    meta = {
        "executors": executors,
        "max_parallel_each": per_executor,
        "sessions": len(started),
        "refused_results": refused,
    }
    return fleet.log, meta


async def _check_complete(client: Client, session_ids: list[str], wait: float = 10.0) -> None:
    deadline = now() + wait
    for session_id in session_ids:
        while True:
            session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
            if session.status == pb.SESSION_STATUS_COMPLETE:
                break
            if now() > deadline:
                raise RuntimeError(
                    f"session {session_id} did not complete (status {session.status}, "
                    f"{session.interaction_count} interactions)"
                )
            await asyncio.sleep(0.05)


async def run_levels(
    cluster: Cluster, mode: str, levels: tuple[int, ...], steps: int, per_slot_of: Any
) -> list[LevelRun]:
    """Every concurrency level on one running cluster."""
    runs: list[LevelRun] = []
    for concurrency in levels:
        log, meta = await drive(cluster, concurrency, steps, per_slot=per_slot_of(concurrency))
        meta.update({"shape": cluster.shape, "database": cluster.database})
        runs.append(LevelRun(mode, concurrency, summarize(log), meta))
    return runs
