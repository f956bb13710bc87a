"""Children-joins: report a parent's spawn step once no child can make progress.

Sessions hands out a join (the parent's pending ``spawn_children``
interaction) under a lease once every child of the parent is terminal or
waits for a sibling that failed or was cancelled;
the gateway reports it to the parent type's orchestrator, whose judge then
looks at the children itself (it never trusts the report). The reported
result is a pure function of the command: status OK and the child ids. So
when a lease lapses mid-report and another replica reports the same join,
the second report is an exact repeat, which Sessions recognises by its
digest and turns into a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from specloom.errors import SpecloomError
from specloom.logs import log_context
from specloom.protoconv import JsonValue, dict_to_struct
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.deps import Deps
from specloom_gateway.metrics import JOINS_REPORTED

log = logging.getLogger("specloom.gateway.joins")

BATCH = 32
"""Joins claimed per call."""


def join_result(command: pb.Command) -> pb.Result:
    """The (deterministic) result reported for a spawn-children command."""
    result = pb.Result(status=pb.RESULT_STATUS_OK)
    children: list[JsonValue] = list(command.spawn_children.child_session_ids)
    dict_to_struct({"children": children}, result.data)
    return result


class JoinReporter:
    """Claims ready joins and reports them."""

    def __init__(self, deps: Deps, claimer_id: str) -> None:
        self._deps = deps
        self._claimer_id = claimer_id
        self._wake = asyncio.Event()

    def signal(self) -> None:
        """A join may have become ready."""
        self._wake.set()

    async def run(self, interval: float) -> None:
        """Report ready joins on every signal and at least every ``interval``."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            if self._deps.draining:
                continue
            try:
                await self.drain()
            except SpecloomError as exc:
                log.warning("claiming joins failed: %s", exc.message)

    async def drain(self) -> int:
        """Claim and report joins until none is ready; returns how many were reported."""
        deps = self._deps
        total = 0
        while True:
            response = await deps.upstream.call(
                deps.upstream.sessions.ClaimJoins,
                spb.ClaimJoinsRequest(
                    claimer_id=self._claimer_id,
                    max_joins=BATCH,
                    lease_ttl_seconds=deps.settings.join_lease_ttl_seconds,
                ),
            )
            await asyncio.gather(*(self._report(join) for join in response.joins))
            total += len(response.joins)
            if len(response.joins) < BATCH:
                return total

    async def _report(self, join: spb.Assignment) -> None:
        deps = self._deps
        session, interaction = join.session, join.interaction
        with log_context(session.id, interaction.id):
            try:
                stub = await deps.router.for_session(session.type)
                response = await deps.upstream.call(
                    stub.ReportAndAdvance,
                    opb.ReportAndAdvanceRequest(
                        scope=session.scope,
                        session_id=session.id,
                        interaction_id=interaction.id,
                        result=join_result(interaction.command),
                        lease_epoch=interaction.lease.epoch,
                    ),
                )
            except SpecloomError as exc:
                # The lease lapses and the join is claimed again (here or by
                # another replica); a refusal for a join already reported is
                # the normal outcome of such a race.
                JOINS_REPORTED.labels(exc.code).inc()
                log.info("join of session %s not reported: %s", session.id, exc.message)
                return
            outcome = "replayed" if response.WhichOneof("next") is None else "reported"
            JOINS_REPORTED.labels(outcome).inc()
            log.info("reported the children-join of %s session %s", session.type, session.id)
