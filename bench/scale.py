"""Growth and scale: long histories, wide fan-out, many idle executors."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.cluster import Cluster
from bench.executors import Fleet
from bench.measure import latency_stats, now
from bench.workflows import NOOP_TYPE, PARENT_TYPE
from specloom.client import Client
from specloom.v1 import gateway_pb2 as gpb

FANOUT_SLOTS_PER_EXECUTOR = 32
"""Parallel commands each fan-out executor takes: 32 x 32 = 1,024 slots, so
dispatch, not executor capacity, is what the fan-out figure measures."""


async def history_growth(
    cluster: Cluster, lengths: tuple[int, ...], window: int, limit_s: float = 1800.0
) -> list[dict[str, Any]]:
    """Per-step cost at each history length in ``lengths``, measured side by side.

    One session per length is grown through the full path until its pending
    command has ``seq == length`` (the executor then holds that command,
    renewing its lease in heartbeats). The measurement then steps the
    sessions in turn, one step at a time: report the held command, wait for
    the next one to arrive, hold it. Interleaving puts every length under the
    same load at the same moments, so machine noise cannot pass for growth.
    """
    arrivals: dict[str, asyncio.Queue[tuple[gpb.CommandAssignment, float]]] = defaultdict(
        asyncio.Queue
    )

    def listener(assignment: gpb.CommandAssignment, at: float) -> None:
        arrivals[assignment.session.id].put_nowait((assignment, at))

    fleet = Fleet(cluster.gateway, cluster.token)
    await fleet.connect(1, len(lengths), listener=listener, answer=False)
    executor = fleet.executors[0]
    held: dict[int, gpb.CommandAssignment] = {}
    samples: dict[int, list[float]] = {h: [] for h in lengths}
    try:
        async with Client(cluster.gateway, cluster.token) as client:
            ids: dict[int, str] = {}
            for history in lengths:
                response = await client.start_session(
                    NOOP_TYPE,
                    {"ticks": history + window + 5},
                    idempotency_key=f"growth-{history}-{uuid.uuid4().hex[:8]}",
                )
                ids[history] = response.session.id

            async def grow(history: int) -> None:
                queue = arrivals[ids[history]]
                while True:
                    assignment, _ = await queue.get()
                    if assignment.interaction.seq >= history:
                        held[history] = assignment
                        return
                    executor.report(assignment)

            await asyncio.wait_for(asyncio.gather(*(grow(h) for h in lengths)), limit_s)
            for _ in range(window):
                for history in lengths:
                    started = now()
                    executor.report(held[history])
                    held[history], arrived = await asyncio.wait_for(
                        arrivals[ids[history]].get(), 60.0
                    )
                    samples[history].append(arrived - started)
    finally:
        await fleet.close()
    return [{"history": h, **latency_stats(samples[h])} for h in lengths]


@dataclass
class FanoutWatch:
    """Arrival times of the fan-out run's commands, by session.

    Only this run's parent and its children count: a command of an earlier
    run's parent (its last step, released when that run's executors closed
    before reporting it) can reach this run's executors.
    """

    parent: str = ""
    starts: dict[str, float] = field(default_factory=dict)
    joins: dict[str, float] = field(default_factory=dict)
    first_command: dict[str, tuple[str, float]] = field(default_factory=dict)
    joined: asyncio.Event = field(default_factory=asyncio.Event)

    def on_assignment(self, assignment: gpb.CommandAssignment, at: float) -> None:
        """Note spawns (a parent's Start), children's first commands, joins."""
        session = assignment.session
        step = assignment.interaction.step
        if session.type == PARENT_TYPE:
            if step == "Start":
                # The executor answers at once; its result makes the spawn.
                self.starts.setdefault(session.id, at)
            elif step == "Joined":
                self.joins.setdefault(session.id, at)
                if session.id == self.parent:
                    self.joined.set()
        elif session.id not in self.first_command:
            self.first_command[session.id] = (session.parent_id, at)

    def watch(self, parent: str) -> None:
        """Count ``parent`` and its children only (its Start may have come already)."""
        self.parent = parent
        if parent in self.joins:
            self.joined.set()

    @property
    def spawned_at(self) -> float:
        return self.starts.get(self.parent, math.nan)

    @property
    def joined_at(self) -> float:
        return self.joins.get(self.parent, math.nan)

    def firsts(self) -> list[float]:
        """Arrival of each child's first command, earliest first."""
        return sorted(at for parent, at in self.first_command.values() if parent == self.parent)


async def fanout(
    cluster: Cluster, children: int, executors: int, limit_s: float = 600.0
) -> dict[str, Any]:
    """Spawn ``children`` no-op children across ``executors``; time the first commands and join."""
    watch = FanoutWatch()
    fleet = Fleet(cluster.gateway, cluster.token)
    await fleet.connect(executors, FANOUT_SLOTS_PER_EXECUTOR, listener=watch.on_assignment)
    try:
        async with Client(cluster.gateway, cluster.token) as client:
            response = await client.start_session(
                PARENT_TYPE, {"children": children}, idempotency_key=f"fan-{uuid.uuid4().hex[:8]}"
            )
            watch.watch(response.session.id)
            await asyncio.wait_for(watch.joined.wait(), limit_s)
    finally:
        await fleet.close()
    firsts = watch.firsts()
    if len(firsts) != children:
        raise RuntimeError(f"{len(firsts)} of {children} children got a command")
    spread = firsts[-1] - watch.spawned_at
    join = watch.joined_at - watch.spawned_at
    return {
        "children": children,
        "executors": executors,
        "slots": executors * FANOUT_SLOTS_PER_EXECUTOR,
        "first_child_s": firsts[0] - watch.spawned_at,
        "all_first_command_s": spread,
        "join_s": join,
        "children_per_s": children / join if join > 0 else math.nan,
    }


async def idle_executors(cluster: Cluster, count: int, samples: int) -> dict[str, Any]:
    """Gateway memory with ``count`` idle streams, and command push latency to them.

    Each sample is a two-step session started while every stream is idle: the
    *start push* runs from calling StartSession to the first command arriving
    (session creation included), the *start call* to StartSession returning;
    the *next push* from that command's arrival (the executor answers at once)
    to the second command's, i.e. one step.
    """
    gateway = cluster.service("gateway")
    await asyncio.sleep(1.0)
    before = gateway.rss_mb()
    arrivals: dict[str, list[float]] = defaultdict(list)
    second: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def listener(assignment: gpb.CommandAssignment, at: float) -> None:
        stamps = arrivals[assignment.session.id]
        stamps.append(at)
        if len(stamps) == 2:
            second[assignment.session.id].set()

    fleet = Fleet(cluster.gateway, cluster.token)
    connect_started = now()
    await fleet.connect(count, 1, listener=listener, limit_s=300.0)
    connect_s = now() - connect_started
    await asyncio.sleep(3.0)  # let allocations settle before reading RSS
    after = gateway.rss_mb()
    starts: list[float] = []
    calls: list[float] = []
    nexts: list[float] = []
    try:
        async with Client(cluster.gateway, cluster.token) as client:
            for n in range(samples):
                started = now()
                response = await client.start_session(
                    NOOP_TYPE, {"ticks": 2}, idempotency_key=f"push-{uuid.uuid4().hex[:8]}-{n}"
                )
                calls.append(now() - started)
                session_id = response.session.id
                await asyncio.wait_for(second[session_id].wait(), 30.0)
                first, then = arrivals[session_id][:2]
                starts.append(first - started)
                nexts.append(then - first)
        peak = gateway.rss_mb()
    finally:
        await fleet.close()
    start_stats, next_stats = latency_stats(starts), latency_stats(nexts)
    call_stats = latency_stats(calls)
    return {
        "count": count,
        "connect_s": connect_s,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_after_pushes_mb": peak,
        "per_stream_kb": (after - before) * 1024.0 / count if count else math.nan,
        "push_p50_ms": next_stats["p50_ms"],
        "push_p99_ms": next_stats["p99_ms"],
        "start_push_p50_ms": start_stats["p50_ms"],
        "start_push_p99_ms": start_stats["p99_ms"],
        "start_call_p50_ms": call_stats["p50_ms"],
        "start_call_p99_ms": call_stats["p99_ms"],
        "push_samples": len(nexts),
    }
