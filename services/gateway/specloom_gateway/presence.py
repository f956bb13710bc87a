"""Executor presence: each open stream's record in Sessions, for people and the unclaimed sweep.

A stream is recorded when it registers, refreshed by its heartbeats at most
once every one and a half heartbeat intervals (a fleet's heartbeats are not
a write each), and forgotten at teardown. A record lives three heartbeat
intervals, so two refreshes can be missed before it stops being live, and a
gateway that dies without its teardown leaves records that simply lapse.

The record lists the commands the stream holds. A heartbeat that finds that
list changed since the last write refreshes the record early (at most once
per half interval), so people see a command start or end within about one
heartbeat, while an idle or steadily busy executor still costs a write only
every one and a half intervals.

Presence never decides a claim — a claim's filters come from the stream
itself — so a write that fails is logged and retried with the next
heartbeat, never fatal to the stream.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from specloom.errors import SpecloomError
from specloom.protoconv import to_timestamp
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.deps import Deps
from specloom_gateway.hub import Executor

log = logging.getLogger("specloom.gateway.presence")

LIVE_INTERVALS = 3
"""A record stays live this many heartbeat intervals without a refresh."""
REFRESH_INTERVALS = 1.5
"""Heartbeats refresh an unchanged record once per this many intervals."""
CHANGED_INTERVALS = 0.5
"""A record whose commands changed is refreshed at most once per this many intervals."""


class Presence:
    """One executor stream's presence record."""

    def __init__(self, deps: Deps, executor: Executor) -> None:
        self._deps = deps
        self._executor = executor
        self._recorded = False
        self._written_at = float("-inf")
        self._written_commands: frozenset[str] = frozenset()

    def _commands(self) -> list[pb.RunningCommand]:
        held = sorted(self._executor.running.values(), key=lambda h: (h.since, h.interaction_id))
        return [
            pb.RunningCommand(
                session_id=h.session.id if h.session is not None else "",
                interaction_id=h.interaction_id,
                step=h.step,
                since=to_timestamp(dt.datetime.fromtimestamp(h.since, dt.UTC)),
            )
            for h in held
        ]

    def record_of(self) -> pb.ExecutorPresence:
        """The stream as ExecutorPresence."""
        executor = self._executor
        return pb.ExecutorPresence(
            connection_id=executor.connection,
            executor_id=executor.id,
            scope=executor.scope,
            name=executor.name,
            workspaces=executor.workspaces,
            serve=pb.ExecutorServe.ValueType(executor.serve),
            capabilities=executor.capabilities,
            slots=executor.capacity,
            running=len(executor.running),
            gateway_id=self._deps.replica_id,
            agent_version=executor.agent_version,
            labels=executor.labels,
            running_commands=self._commands(),
        )

    async def _write(self) -> None:
        deps = self._deps
        interval = deps.settings.heartbeat_interval_seconds
        self._written_at = time.monotonic()
        self._written_commands = frozenset(self._executor.running)
        try:
            await deps.upstream.call(
                deps.upstream.sessions.RecordExecutor,
                spb.RecordExecutorRequest(
                    executor=self.record_of(),
                    live_seconds=min(3600, LIVE_INTERVALS * interval),
                    # Once recorded, only refresh: a heartbeat answered after
                    # the teardown's forget must not bring the record back.
                    refresh_only=self._recorded,
                ),
            )
        except SpecloomError as exc:
            log.warning("could not record executor %s: %s", self._executor.name, exc.message)
            return
        self._recorded = True

    async def registered(self) -> None:
        """The stream was welcomed: record it."""
        await self._write()

    async def heartbeat(self) -> None:
        """A heartbeat arrived: refresh the record if it is due, or its commands changed."""
        interval = self._deps.settings.heartbeat_interval_seconds
        age = time.monotonic() - self._written_at
        changed = frozenset(self._executor.running) != self._written_commands
        if age >= REFRESH_INTERVALS * interval or (changed and age >= CHANGED_INTERVALS * interval):
            await self._write()

    async def ended(self) -> None:
        """The stream ended: forget it (it could not run anything any more)."""
        deps = self._deps
        try:
            await deps.upstream.call(
                deps.upstream.sessions.ForgetExecutor,
                spb.ForgetExecutorRequest(connection_id=self._executor.connection),
            )
        except SpecloomError as exc:
            log.warning("could not forget executor %s: %s", self._executor.name, exc.message)
