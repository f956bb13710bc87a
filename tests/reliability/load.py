"""Sustained load through the public API, and the checks that nothing was lost.

:class:`Load` keeps ``target`` agentic benchmark sessions (``BenchNoop`` with
``ticks`` no-op steps; every ``parent_every``-th one a ``BenchParent`` fanning
out to ``children`` one-step children) active at once until told to stop,
starting a new one whenever one finishes. Every start carries an
idempotency key and is retried with the same key until it succeeds, so a
start whose answer was lost to a crash never becomes two sessions.

Every error a client call sees is counted by status code: a fault test
asserts the only ones are the retriable kind.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from bench.workflows import NOOP_TYPE, PARENT_TYPE
from specloom.client import Client
from specloom.errors import SpecloomError
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb

T = TypeVar("T")

RETRIABLE = frozenset({"UNAVAILABLE"})
"""What a client may see while a process or the database restarts."""


async def retrying(
    call: Callable[[], Awaitable[T]],
    errors: collections.Counter[str],
    *,
    within: float = 120.0,
    retriable: frozenset[str] = RETRIABLE,
) -> T:
    """``call()`` until it succeeds; retriable errors are counted and retried."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except SpecloomError as exc:
            errors[exc.code] += 1
            if exc.code not in retriable or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


@dataclass
class Load:
    """Keeps ``target`` benchmark sessions running (see the module doc)."""

    client: Client
    target: int = 100
    ticks: int = 5
    parent_every: int = 10
    children: int = 3
    prefix: str = "load"
    sessions: dict[str, str] = field(default_factory=dict)
    """Idempotency key → session id, for every session started."""
    finished: set[str] = field(default_factory=set)
    """Session ids seen no longer active."""
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    """Status codes of failed client calls."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _started: int = 0

    def kind(self, index: int) -> str:
        """The session type of the ``index``-th session."""
        return PARENT_TYPE if self.parent_every and index % self.parent_every == 0 else NOOP_TYPE

    async def _active(self) -> set[str]:
        sessions, _ = await self.client.list_sessions(
            statuses=["active"], types=[NOOP_TYPE, PARENT_TYPE], top_level_only=True, page_size=500
        )
        return {s.id for s in sessions}

    async def _start(self, index: int) -> None:
        key = f"{self.prefix}-{index}"
        kind = self.kind(index)
        params = {"children": self.children} if kind == PARENT_TYPE else {"ticks": self.ticks}
        started = await retrying(
            lambda: self.client.start_session(kind, params, mode="agentic", idempotency_key=key),
            self.errors,
        )
        self.sessions[key] = started.session.id

    async def run(self) -> None:
        """Top up to ``target`` active sessions until :attr:`stop` is set."""
        while not self.stop.is_set():
            try:
                active = await self._active()
            except SpecloomError as exc:
                self.errors[exc.code] += 1
                await asyncio.sleep(0.2)
                continue
            self.finished |= set(self.sessions.values()) - active
            missing = self.target - len(active)
            if missing > 0:
                first, self._started = self._started, self._started + missing
                await asyncio.gather(*(self._start(i) for i in range(first, self._started)))
            await asyncio.sleep(0.2)

    async def progress(self, more: int, within: float = 90.0) -> None:
        """Wait until ``more`` sessions have finished beyond those finished now."""
        goal = len(self.finished) + more
        deadline = time.monotonic() + within
        while len(self.finished) < goal:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no progress: {len(self.finished)} of {goal} sessions finished "
                    f"within {within} s (errors: {dict(self.errors)})"
                )
            await asyncio.sleep(0.1)

    async def drain(self, within: float = 120.0) -> None:
        """Stop starting sessions; wait until none is active."""
        self.stop.set()
        deadline = time.monotonic() + within
        while True:
            active = await retrying(self._active, self.errors)
            if not active:
                self.finished = set(self.sessions.values())
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(active)} sessions still active after {within} s")
            await asyncio.sleep(0.5)

    async def verify(self) -> list[str]:
        """Problems with any session started (an empty list when all is well).

        Every session is complete; each ``BenchNoop`` has exactly ``ticks``
        ``Tick`` interactions, each completed once (a lost result leaves one
        pending, a doubled one a wrong count), the last judged WARNING (its
        way out of the loop) and the rest OK; each parent ran
        Start → Spawn → Joined over ``children`` complete children. And no
        idempotency key made two sessions.
        """
        problems: list[str] = []
        ids = list(self.sessions.values())
        for start in range(0, len(ids), 20):
            batch = ids[start : start + 20]
            heads = await asyncio.gather(
                *(retrying(partial(self.client.get_session, i), self.errors) for i in batch)
            )
            for session in heads:
                problems += await self._check(session)
        listed = await self._all_listed()
        if sorted(listed) != sorted(ids):
            problems.append(
                f"{len(listed)} benchmark sessions exist for {len(ids)} idempotency keys"
            )
        return problems

    async def _check(self, session: pb.Session) -> list[str]:
        where = f"{session.type} {session.id}"
        if session.status != pb.SESSION_STATUS_COMPLETE:
            return [f"{where} is {session.status} ({session.status_reason})"]
        problems = [
            f"{where}: {i.step} #{i.seq} is {i.status}"
            for i in session.interactions
            if i.status != pb.INTERACTION_STATUS_COMPLETED or not i.HasField("result")
        ]
        steps = [i.step for i in session.interactions]
        if session.type == NOOP_TYPE:
            ticks = int(session.params.fields["ticks"].number_value)
            return problems + _check_ticks(where, session, ticks)
        if steps != ["Start", "Spawn", "Joined"]:
            problems.append(f"{where}: steps {steps}")
        children = await retrying(partial(self.client.children, session.id), self.errors)
        if len(children) != self.children:
            problems.append(f"{where}: {len(children)} children, not {self.children}")
        for child in children:
            full = await retrying(partial(self.client.get_session, child.id), self.errors)
            if full.status != pb.SESSION_STATUS_COMPLETE:
                problems.append(f"{where}: child {child.id} is {full.status}")
            problems += _check_ticks(f"{where} child {child.id}", full, 1)
        return problems

    async def _all_listed(self) -> list[str]:
        found: list[str] = []
        token = ""
        while True:
            page, token = await retrying(
                partial(
                    self.client.list_sessions,
                    types=[NOOP_TYPE, PARENT_TYPE],
                    top_level_only=True,
                    page_size=500,
                    page_token=token,
                ),
                self.errors,
            )
            found += [s.id for s in page if s.idempotency_key.startswith(f"{self.prefix}-")]
            if not token:
                return found


def _check_ticks(where: str, session: pb.Session, ticks: int) -> list[str]:
    steps = [i.step for i in session.interactions]
    if steps != ["Tick"] * ticks:
        return [f"{where}: {len(steps)} interactions {steps[:5]}…, expected {ticks} Ticks"]
    statuses = [i.result.status for i in session.interactions]
    expected = [pb.RESULT_STATUS_OK] * (ticks - 1) + [pb.RESULT_STATUS_WARNING]
    if statuses != expected:
        return [f"{where}: result statuses {statuses}"]
    done = struct_to_dict(session.state).get("ticks_done")
    if done != ticks:
        return [f"{where}: ticks_done is {done}, expected {ticks}"]
    return []
