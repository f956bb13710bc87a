"""Recovery sweeps: stalled sessions get their next step; unclaimed commands pause.

Unclaimed: a command no connected executor can run — none serves the
session's workspace, or runs its owner's sessions, or has the capability
it needs — would wait forever. While it waits, reads show what it waits for
(``Session.waiting_for``, from the executors' presence); after the
executor-wait timeout its session is paused with that as the reason, and
resuming it (once such an executor is connected) makes the command
claimable again. A command only queued behind other work (a live executor
could claim it) is left to wait.

Stalled:

That state is a crash between two writes in some path (a revived child an
orchestrator could not start, a report lost with its process). NextStep is
idempotent, so several gateway replicas sweeping at once cannot create two
steps; the new command's append signals dispatch like any other.
"""

from __future__ import annotations

import asyncio
import logging

from specloom.errors import SpecloomError
from specloom.logs import log_context
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.deps import Deps
from specloom_gateway.metrics import COMMANDS_UNCLAIMED, STALLED_KICKED

log = logging.getLogger("specloom.gateway.stalled")

LIMIT = 200
"""Sessions recovered per sweep."""


class StalledSweeper:
    """Asks orchestrators for the next step of stalled executor-driven (auto, agentic) sessions."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def run(self, interval: float) -> None:
        """Sweep every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            if self._deps.draining:
                continue
            try:
                await self.sweep()
                await self.pause_unclaimed()
            except SpecloomError as exc:
                log.warning("recovery sweep failed: %s", exc.message)

    async def sweep(self) -> int:
        """One sweep; returns how many sessions were given a next step."""
        deps = self._deps
        response = await deps.upstream.call(
            deps.upstream.sessions.FindStalledSessions,
            spb.FindStalledSessionsRequest(idle_ms=deps.settings.stalled_idle_ms, limit=LIMIT),
        )
        kicked = 0
        for session in response.sessions:
            with log_context(session.id):
                try:
                    stub = await deps.router.for_session(session.type)
                    await deps.upstream.call(
                        stub.NextStep,
                        opb.NextStepRequest(scope=session.scope, session_id=session.id),
                    )
                except SpecloomError as exc:
                    log.warning("could not recover stalled session %s: %s", session.id, exc)
                    continue
            kicked += 1
            STALLED_KICKED.inc()
            log.info("recovered stalled %s session %s", session.type, session.id)
        return kicked

    async def pause_unclaimed(self) -> int:
        """Pause sessions whose command no executor claimed in time; returns how many."""
        deps = self._deps
        timeout = deps.settings.executor_wait_timeout_seconds
        if timeout <= 0:
            return 0
        response = await deps.upstream.call(
            deps.upstream.sessions.FindUnclaimedCommands,
            spb.FindUnclaimedCommandsRequest(waited_ms=int(timeout * 1000), limit=LIMIT),
        )
        paused = 0
        for waiting in response.unclaimed:
            session, interaction = waiting.session, waiting.interaction
            if not session.waiting_for:
                continue  # a live executor could claim it: it is queued, not stuck
            reason = (
                f"waiting for {session.waiting_for}: nothing claimed {interaction.step} "
                f"within {timeout:.0f} s; start one (`specloom agent` in that repository), "
                "then resume the session"
            )
            with log_context(session.id, interaction.id):
                try:
                    stub = await deps.router.for_session(session.type)
                    await deps.upstream.call(
                        stub.SteerSession,
                        opb.SteerSessionRequest(
                            scope=session.scope,
                            session_id=session.id,
                            action=pb.CONTROL_ACTION_PAUSE,
                            reason=reason,
                        ),
                    )
                except SpecloomError as exc:
                    log.warning("could not pause session %s: %s", session.id, exc)
                    continue
                log.warning("paused: %s", reason)
            paused += 1
            COMMANDS_UNCLAIMED.inc()
        return paused
