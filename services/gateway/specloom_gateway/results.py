"""Executor results: the fused report-and-advance call, and its acknowledgement.

One step costs one orchestrator call (``ReportAndAdvance``), which is one
Sessions transaction: the result is judged and recorded and the next
command appended, already leased to the reporting executor when it can run
it. That command goes straight back down the same stream, so a session
driven by one executor never waits for a claim between steps.

Fencing is Sessions' job (the epoch and the expiry of the lease), but
Sessions only sees an epoch, not who sends it; so the gateway forwards a
result only when the reporting executor holds that lease. An executor
cannot report on someone else's interaction by guessing an epoch.
"""

from __future__ import annotations

import collections
import logging
import time

from specloom.errors import FailedPrecondition, InvalidArgument, SpecloomError
from specloom.logs import log_context
from specloom.rpc.server import MAX_MESSAGE_BYTES
from specloom.rpc.tracing import span
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom.validate import require_id
from specloom_gateway.deps import Deps
from specloom_gateway.hub import Executor, Held
from specloom_gateway.metrics import ASSIGNMENTS_PUSHED, COMMANDS_TIMED_OUT, RESULTS_REFUSED
from specloom_gateway.output import OutputBuffer
from specloom_gateway.projectmap import record_later

log = logging.getLogger("specloom.gateway.results")

RESULT_SPAN = "specloom.v1.GatewayService/Connect.result"
"""The span of one executor result (with tracing on): its report is a trace of its own."""
TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"})
"""Refusals after which the executor keeps its lease and may send the result again."""


def ack(interaction_id: str, error: SpecloomError | None = None) -> gpb.ConnectResponse:
    """The ResultAck for a result (accepted when ``error`` is None)."""
    if error is None:
        return gpb.ConnectResponse(ack=gpb.ResultAck(interaction_id=interaction_id, accepted=True))
    return gpb.ConnectResponse(
        ack=gpb.ResultAck(
            interaction_id=interaction_id, accepted=False, code=error.code, message=error.message
        )
    )


def cancel(interaction_id: str, reason: str) -> gpb.ConnectResponse:
    """A CancelCommand."""
    return gpb.ConnectResponse(
        cancel=gpb.CancelCommand(interaction_id=interaction_id, reason=reason)
    )


def _too_large(result: pb.Result, size: int) -> pb.Result:
    """What is forwarded of a result whose report would not fit in a message.

    An executor's message may be up to the message cap; the report around its
    result is a few KiB larger. Refused, the result would be dropped and the
    command run again; forwarded in brief, the step's judge decides on it
    like on any failed command, and the audit trail says what happened.
    """
    return pb.Result(
        status=pb.RESULT_STATUS_ERROR,
        exit_code=result.exit_code,
        duration_ms=result.duration_ms,
        log_ref=result.log_ref,
        output_truncated=True,
        error_message=(
            f"the executor's result was {size} bytes, more than a message carries "
            f"({MAX_MESSAGE_BYTES} bytes); only this summary of it was kept"
        ),
    )


def _bare(session: pb.Session) -> pb.Session:
    head = pb.Session()
    head.CopyFrom(session)
    del head.interactions[:]
    return head


RECORDED_KEPT = 512
"""Results a stream remembers recording, so a heartbeat that still lists one
(sent before the executor read its ack) does not draw a cancel."""


class ResultReporter:
    """Reports one executor stream's results."""

    def __init__(self, deps: Deps, executor: Executor, output: OutputBuffer) -> None:
        self._deps = deps
        self._executor = executor
        self._output = output
        self._recorded: collections.deque[str] = collections.deque(maxlen=RECORDED_KEPT)

    def recorded(self, interaction_id: str) -> bool:
        """Whether this stream recorded a result for ``interaction_id`` lately."""
        return interaction_id in self._recorded

    async def report(self, message: gpb.CommandResult) -> None:
        """Report ``message`` and acknowledge it; chain the next command if it is ours."""
        executor = self._executor
        interaction_id = message.interaction_id
        held: Held | None = None
        with (
            log_context(message.session_id, interaction_id),
            span(
                RESULT_SPAN,
                {
                    "specloom.session_id": message.session_id,
                    "specloom.interaction_id": interaction_id,
                },
            ),
        ):
            try:
                require_id("result.session_id", message.session_id)
                require_id("result.interaction_id", interaction_id)
                current = executor.running.get(interaction_id)
                if (
                    current is None
                    or current.epoch != message.lease_epoch
                    or current.session is None
                ):
                    # Only a lease confirmed by Sessions becomes ``held``: a
                    # refusal must never drop a lease this stream holds at
                    # another epoch (a late answer about an older claim).
                    held = await self._adopt(message)
                elif current.session.id != message.session_id:
                    raise InvalidArgument(
                        f"interaction {interaction_id} belongs to session {current.session.id}, "
                        f"not {message.session_id}"
                    )
                else:
                    held = current
                held.reporting = True
                response = await self._advance(held, message.result)
            except SpecloomError as exc:
                self._refused(message, held, exc)
            else:
                log.debug("result recorded: %s", pb.ResultStatus.Name(message.result.status))
                self._output.forget(interaction_id)
                executor.drop(interaction_id, message.lease_epoch)
                self._recorded.append(interaction_id)
                executor.push(ack(interaction_id))
                orphan = self._chain(response)
                if orphan is not None:
                    await self._release([orphan])
                if message.result.HasField("project_scan") and held.session is not None:
                    # A Finalize's scan of the line: on the map too, on the side.
                    record_later(self._deps.upstream, executor.scope, held.session, message.result)
            if self._deps.draining and not executor.running:
                executor.close()

    async def _advance(
        self, held: Held, result: pb.Result, *, chain: bool = True
    ) -> opb.ReportAndAdvanceResponse:
        assert held.session is not None
        deps, executor = self._deps, self._executor
        # Output first: once the result is visible, so is the whole output.
        cut = await self._output.finish(held.interaction_id)
        if cut and not result.output_truncated:
            # The stored output was cut here or at Sessions' cap: say so.
            marked = pb.Result()
            marked.CopyFrom(result)
            marked.output_truncated = True
            result = marked
        stub = await deps.router.for_session(held.session.type)
        chain = chain and not (executor.draining or executor.closed or deps.draining)
        request = opb.ReportAndAdvanceRequest(
            scope=executor.scope,
            session_id=held.session.id,
            interaction_id=held.interaction_id,
            result=result,
            lease_epoch=held.epoch,
            lease_to_executor_id=executor.id if chain else "",
            executor_capabilities=executor.capabilities if chain else (),
            lease_ttl_seconds=deps.settings.lease_ttl_seconds,
        )
        size = request.ByteSize()
        if size > MAX_MESSAGE_BYTES:
            request.result.CopyFrom(_too_large(result, size))
        return await deps.upstream.report(stub, request)

    def _chain(self, response: opb.ReportAndAdvanceResponse) -> spb.LeaseRef | None:
        """Hand on the next command if it came leased to this executor.

        Returns that lease when the stream closed meanwhile: the stream's
        cleanup releases only the leases it holds, so this one must be
        given back by the caller, or it would lapse before anyone ran it.
        """
        executor = self._executor
        orphan = None
        if response.HasField("interaction"):
            after = response.interaction
            if (
                after.status == pb.INTERACTION_STATUS_PENDING
                and after.lease.executor_id == executor.id
            ):
                if executor.assign(response.session, after, self._deps.deadline(after.command)):
                    ASSIGNMENTS_PUSHED.labels("chained").inc()
                    return None
                orphan = spb.LeaseRef(
                    interaction_id=after.id,
                    epoch=after.lease.epoch,
                    expires_at=after.lease.expires_at,
                )
        # The slot is free: there may be claimable work waiting for it.
        self._deps.wake(executor.key)
        return orphan

    def _refused(self, message: gpb.CommandResult, held: Held | None, exc: SpecloomError) -> None:
        executor = self._executor
        RESULTS_REFUSED.labels(exc.code).inc()
        log.info("result refused (%s): %s", exc.code, exc.message)
        if held is not None:
            if exc.code in TRANSIENT:
                # Nothing was recorded; the lease is still ours, so the
                # executor may send the same result again.
                held.reporting = False
            elif executor.drop(held.interaction_id, held.epoch) is not None:
                self._output.drop(held.interaction_id)
                self._deps.wake(executor.key)
        executor.push(ack(message.interaction_id, exc))

    async def _adopt(self, message: gpb.CommandResult) -> Held:
        """A result for a lease this stream does not hold: ask Sessions who does.

        That happens after a reconnect to another gateway replica (the lease
        was renewed under this executor's id), for resends of a result whose
        ack was lost, and for late results after a lease was lost. A pending
        interaction takes a result only from its lease holder at the current
        epoch; anything else is refused here.
        """
        deps, executor = self._deps, self._executor
        fetched = await deps.upstream.call(
            deps.upstream.sessions.FetchSession,
            spb.FetchSessionRequest(
                scope=executor.scope,
                session_id=message.session_id,
                view=pb.INTERACTION_VIEW_LAST,
            ),
        )
        session = fetched.session
        newest = session.interactions[-1] if session.interactions else None
        pending = newest is not None and newest.status == pb.INTERACTION_STATUS_PENDING
        if not pending or newest is None or newest.id != message.interaction_id:
            # Not pending: only an exact repeat of the accepted result can
            # pass (a resend after a lost ack), and Sessions recognises it by
            # its digest; anything else it refuses. Nothing can be written,
            # so the lease holder does not matter here.
            return Held(
                interaction_id=message.interaction_id,
                epoch=message.lease_epoch,
                session=_bare(session),
                deadline=0.0,
            )
        if newest.lease.executor_id != executor.id:
            raise FailedPrecondition(
                f"interaction {message.interaction_id} is not leased to this executor"
            )
        if newest.lease.epoch != message.lease_epoch:
            raise FailedPrecondition(
                f"lease epoch {message.lease_epoch} of interaction {message.interaction_id} "
                f"is stale; the lease was taken over (epoch {newest.lease.epoch})"
            )
        held = Held(
            interaction_id=newest.id,
            epoch=newest.lease.epoch,
            session=_bare(session),
            deadline=deps.deadline(newest.command),
            expires_at=newest.lease.expires_at if newest.lease.HasField("expires_at") else None,
            step=newest.step,
        )
        executor.running[newest.id] = held
        return held

    async def time_out(self, held: Held) -> None:
        """Report a command that ran past its limit as an error, and stop it."""
        executor, deps = self._executor, self._deps
        held.reporting = True
        limit = time.monotonic() - held.assigned_at
        reason = f"the command ran for {limit:.0f} s, past its time limit, without a result"
        COMMANDS_TIMED_OUT.inc()
        executor.push(cancel(held.interaction_id, reason))
        try:
            if held.session is not None:
                with log_context(held.session.id, held.interaction_id):
                    log.warning("gateway timed out a command: %s", reason)
                    # Deterministic: if the executor's own late report races
                    # this one, the fence lets exactly one of them in.
                    result = pb.Result(status=pb.RESULT_STATUS_ERROR, error_message=reason)
                    # No chaining: an executor that let a command hang gets no
                    # new work through this path.
                    await self._advance(held, result, chain=False)
                    executor.drop(held.interaction_id, held.epoch)
                    self._output.drop(held.interaction_id)
                    deps.wake(executor.key)
                    return
        except SpecloomError as exc:
            log.warning("could not report timed-out interaction %s: %s", held.interaction_id, exc)
        if executor.drop(held.interaction_id, held.epoch) is not None:
            self._output.drop(held.interaction_id)
            await self._release([held.ref()])
            deps.wake(executor.key)

    async def _release(self, leases: list[spb.LeaseRef]) -> None:
        deps = self._deps
        try:
            await deps.upstream.call(
                deps.upstream.sessions.ReleaseLeases,
                spb.ReleaseLeasesRequest(executor_id=self._executor.id, leases=leases),
            )
        except SpecloomError as exc:
            log.warning("could not release leases %s: %s", [r.interaction_id for r in leases], exc)
