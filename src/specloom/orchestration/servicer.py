"""OrchestratorService for any registry of workflows.

Thin: proto in, the engine decides, one Sessions write, proto out. The
servicer keeps no state that matters: the head cache only saves a read when
this replica handled the session's previous step, and a stale entry costs an
ABORTED from Sessions and one re-read — never a wrong decision, because
every write is guarded by the version it was decided on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from specloom.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SpecloomError,
)
from specloom.ids import new_id
from specloom.logs import log_context
from specloom.orchestration.engine import (
    Decoded,
    Done,
    Engine,
    LeaseOffer,
    Write,
    pending_of,
    without_next_step,
)
from specloom.orchestration.heads import HeadCache
from specloom.orchestration.sessions_client import SessionsClient
from specloom.rpc.batching import fit_answer
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import orchestrator_pb2_grpc as opb_grpc
from specloom.v1 import sessions_pb2 as spb
from specloom.validate import parse_struct, require_id, require_scope, require_workspace
from specloom.workflow._proto import describe, result_digest

log = logging.getLogger("specloom.orchestration")

MAX_ATTEMPTS = 5
"""Re-reads after ABORTED before giving up (the caller then sees ABORTED)."""
MAX_BATCH = 1000
DEFAULT_LEASE_TTL = 60
MAX_LEASE_TTL = 3600


def _bare(head: pb.Session) -> pb.Session:
    """The head without interactions (what responses carry)."""
    bare = pb.Session()
    bare.CopyFrom(head)
    del bare.interactions[:]
    return bare


def _head_after(response: spb.AdvanceSessionResponse) -> pb.Session:
    head = pb.Session()
    head.CopyFrom(response.session)
    del head.interactions[:]
    if len(response.appended):
        head.interactions.append(response.appended[-1])
    elif response.HasField("completed"):
        head.interactions.append(response.completed)
    return head


def _left_out() -> opb.ReportAndAdvanceOutcome:
    # ABORTED: the caller keeps the lease and sends the report again, alone;
    # it was recorded, so the repeat is an exact one and gets the same answer.
    return opb.ReportAndAdvanceOutcome(
        error=pb.ItemError(
            code=Aborted.code,
            message="recorded, but its answer did not fit in this batch's message; "
            "send the report again",
        )
    )


def _next_of(after: pb.Interaction | Done | None) -> str:
    """What a report led to, for a log line."""
    if isinstance(after, pb.Interaction):
        return after.step
    if isinstance(after, Done):
        return f"done, {pb.SessionStatus.Name(after.status)}"  # type: ignore[arg-type]
    return "nothing new (a repeat)"


def _lease_offer(request: opb.ReportAndAdvanceRequest) -> LeaseOffer | None:
    if not request.lease_to_executor_id:
        return None
    ttl = request.lease_ttl_seconds or DEFAULT_LEASE_TTL
    if not 1 <= ttl <= MAX_LEASE_TTL:
        raise InvalidArgument(f"lease_ttl_seconds must be between 1 and {MAX_LEASE_TTL}")
    return LeaseOffer(
        executor_id=require_id("lease_to_executor_id", request.lease_to_executor_id),
        capabilities=frozenset(request.executor_capabilities),
        ttl_seconds=ttl,
    )


class OrchestratorServicer(opb_grpc.OrchestratorServiceServicer):
    """The shared Orchestrator proto on top of the workflow engine."""

    def __init__(self, engine: Engine, sessions: SessionsClient, cache_size: int = 10_000) -> None:
        self.engine = engine
        self.sessions = sessions
        self.cache = HeadCache(cache_size)

    # -- helpers ---------------------------------------------------------------------

    async def _head(self, scope: pb.Scope, session_id: str, *, cached: bool) -> pb.Session:
        if cached:
            head = self.cache.get(scope, session_id)
            if head is not None:
                return head
        head = await self.sessions.fetch(scope, session_id)
        if not self.engine.registry.serves(head.type):
            raise FailedPrecondition(
                f"session {session_id} is a {head.type} session, which this service does not serve"
            )
        self.cache.put(head)
        return head

    def _loader(self, scope: pb.Scope, parent_id: str) -> Any:
        async def load() -> Sequence[pb.Session]:
            return await self.sessions.children(scope, parent_id)

        return load

    async def _apply(
        self, scope: pb.Scope, head: pb.Session, write: Write, decoded: Decoded | None = None
    ) -> spb.AdvanceSessionResponse:
        try:
            response = await self.sessions.advance(scope, head, write)
        except Exception:
            self.cache.drop(head.id)
            raise
        after = _head_after(response)
        known = None
        if decoded is not None and decoded.version == head.version:
            # What was just written, in plain form: the next step of this
            # session decodes nothing.
            known = Decoded(
                version=after.version,
                params=decoded.params,
                state=write.state if write.state is not None else decoded.state,
                progress=write.progress if write.progress is not None else decoded.progress,
            )
        self.cache.put(after, known)
        for child in response.children:
            # Each child comes with its newest interaction, as a head read
            # would give it: its first result needs no read of its own.
            if not child.interactions or not self.engine.registry.serves(child.type):
                continue
            self.cache.offer(child)
        for revival in write.revive:
            await self._kick(scope, revival.child_id)
        return response

    async def _write_or_stop(
        self, scope: pb.Scope, head: pb.Session, write: Write, decoded: Decoded | None
    ) -> spb.AdvanceSessionResponse:
        """Apply ``write``; if it can never be written (RESOURCE_EXHAUSTED: too
        large for Sessions or for a message), write it without its next step,
        the session stopping FAILED with the reason. Sent again as it is, it
        would be refused again: the executor's command would run over and
        over and the session would never say why."""
        try:
            return await self._apply(scope, head, write, decoded)
        except ResourceExhausted as exc:
            stopped = without_next_step(write, exc.message)
            if stopped is None:
                raise
        log.warning("session %s stops: %s", head.id, stopped.finish[1] if stopped.finish else "")
        return await self._apply(scope, head, stopped, decoded)

    async def _kick(self, scope: pb.Scope, session_id: str) -> None:
        # A revived child has nothing pending; give it its next command now.
        # If this fails (a crash, a race) the gateway's stalled-session sweep
        # asks again, so the error is only logged.
        try:
            await self._next(scope, session_id, cached=False)
        except Exception:
            log.exception("could not start revived child %s", session_id)

    async def _next(
        self, scope: pb.Scope, session_id: str, *, cached: bool
    ) -> tuple[pb.Session, pb.Interaction | Done]:
        for attempt in range(MAX_ATTEMPTS):
            head = await self._head(scope, session_id, cached=cached and attempt == 0)
            decoded = self.engine.decode(head, self.cache.decoded(head))
            outcome = await self.engine.next_step(head, self._loader(scope, head.id), known=decoded)
            if not isinstance(outcome, Write):
                return head, outcome
            try:
                response = await self._write_or_stop(scope, head, outcome, decoded)
            except Aborted:
                continue
            if len(response.appended):
                return response.session, response.appended[-1]
            return response.session, Done(response.session.status, response.session.status_reason)
        raise Aborted(f"session {session_id} kept changing under concurrent writers; try again")

    # -- the proto -------------------------------------------------------------------

    async def OpenSession(
        self, request: opb.OpenSessionRequest, context: Any
    ) -> opb.OpenSessionResponse:
        require_scope(request.scope)
        if not request.type:
            raise InvalidArgument("type is required")
        if request.execution_mode not in pb.ExecutionMode.values():
            raise InvalidArgument(f"execution_mode {request.execution_mode} is not a known mode")
        if len(request.idempotency_key) > 200:
            raise InvalidArgument("idempotency_key is longer than 200 characters")
        params = parse_struct("params", request.params)
        session = self.engine.open(request.type, request.scope, request.execution_mode, params)
        if request.HasField("workspace"):
            session.workspace.CopyFrom(require_workspace("workspace", request.workspace))
        # The first step names the session's id (its worktree and branch), so
        # the id is chosen here and the session is created with its first
        # command in one write — leased at once to the executor on offer,
        # when it may run it.
        session.id = new_id()
        first = self.engine.begin(session)
        claim = request.claim if request.HasField("claim") else None
        response = await self.sessions.create(
            session, first.append[0], request.idempotency_key, claim=claim, first_state=first.state
        )
        opened = response.session
        if response.created:
            self.cache.put(opened)
        # A session an earlier start with the same key created without its
        # first command (one created before commands came with the create,
        # and stopped before issuing it) gets it now.
        elif opened.interaction_count == 0 and opened.status == pb.SESSION_STATUS_ACTIVE:
            try:
                advanced = await self._apply(request.scope, opened, self.engine.begin(opened))
                opened = _head_after(advanced)
            except Aborted:
                # A concurrent start with the same key issued it first.
                after, outcome = await self._next(request.scope, opened.id, cached=False)
                opened = _bare(after)
                if isinstance(outcome, pb.Interaction):
                    opened.interactions.append(outcome)
        return opb.OpenSessionResponse(session=opened, created=response.created)

    async def NextStep(self, request: opb.NextStepRequest, context: Any) -> opb.NextStepResponse:
        require_scope(request.scope)
        require_id("session_id", request.session_id)
        head, outcome = await self._next(request.scope, request.session_id, cached=False)
        if isinstance(outcome, Done):
            return opb.NextStepResponse(
                session=_bare(head),
                done=opb.Done(status=outcome.status, reason=outcome.reason),  # type: ignore[arg-type]
            )
        return opb.NextStepResponse(session=_bare(head), interaction=outcome)

    async def HandleResult(
        self, request: opb.HandleResultRequest, context: Any
    ) -> opb.HandleResultResponse:
        head, completed, _ = await self._report(
            request.scope,
            request.session_id,
            request.interaction_id,
            request.result,
            request.lease_epoch,
            advance=False,
            lease=None,
        )
        return opb.HandleResultResponse(session=_bare(head), interaction=completed)

    async def ReportAndAdvance(
        self, request: opb.ReportAndAdvanceRequest, context: Any
    ) -> opb.ReportAndAdvanceResponse:
        return await self._report_and_advance(request)

    async def ReportAndAdvanceMany(
        self, request: opb.ReportAndAdvanceManyRequest, context: Any
    ) -> opb.ReportAndAdvanceManyResponse:
        if len(request.items) > MAX_BATCH:
            raise ResourceExhausted(
                f"items holds {len(request.items)} reports; a batch takes at most {MAX_BATCH}"
            )
        # Each item runs the single-item path; their Sessions writes meet in
        # the Sessions client's coalescer and leave as one AdvanceSessions.
        done = await asyncio.gather(
            *(self._report_and_advance(item) for item in request.items), return_exceptions=True
        )
        outcomes: list[opb.ReportAndAdvanceOutcome] = []
        for outcome in done:
            if isinstance(outcome, SpecloomError):
                outcomes.append(
                    opb.ReportAndAdvanceOutcome(
                        error=pb.ItemError(code=outcome.code, message=outcome.message)
                    )
                )
            elif isinstance(outcome, BaseException):
                raise outcome  # our bug: the interceptor logs it and answers INTERNAL
            else:
                outcomes.append(opb.ReportAndAdvanceOutcome(response=outcome))
        return opb.ReportAndAdvanceManyResponse(
            outcomes=fit_answer(outcomes, opb.ReportAndAdvanceOutcome.ByteSize, _left_out)
        )

    async def _report_and_advance(
        self, request: opb.ReportAndAdvanceRequest
    ) -> opb.ReportAndAdvanceResponse:
        # Batched items share one call: each tags its own log lines.
        with log_context(request.session_id, request.interaction_id):
            head, completed, after = await self._report(
                request.scope,
                request.session_id,
                request.interaction_id,
                request.result,
                request.lease_epoch,
                advance=True,
                lease=_lease_offer(request),
            )
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s judged %s; next: %s",
                    completed.step,
                    pb.ResultStatus.Name(completed.result.status),
                    _next_of(after),
                )
        response = opb.ReportAndAdvanceResponse(session=_bare(head), completed=completed)
        if isinstance(after, pb.Interaction):
            response.interaction.CopyFrom(after)
        elif isinstance(after, Done):
            response.done.CopyFrom(opb.Done(status=after.status, reason=after.reason))  # type: ignore[arg-type]
        return response

    async def _report(
        self,
        scope: pb.Scope,
        session_id: str,
        interaction_id: str,
        result: pb.Result,
        lease_epoch: int,
        *,
        advance: bool,
        lease: LeaseOffer | None,
    ) -> tuple[pb.Session, pb.Interaction, pb.Interaction | Done | None]:
        require_scope(scope)
        require_id("session_id", session_id)
        require_id("interaction_id", interaction_id)
        if result.status not in (
            pb.RESULT_STATUS_OK,
            pb.RESULT_STATUS_WARNING,
            pb.RESULT_STATUS_ERROR,
        ):
            raise InvalidArgument("result.status must be OK, WARNING or ERROR")
        if lease_epoch < 0:
            raise InvalidArgument("lease_epoch must not be negative")
        digest = result_digest(result)
        for attempt in range(MAX_ATTEMPTS):
            cached = self.cache.get(scope, session_id) if attempt == 0 else None
            head = cached or await self._head(scope, session_id, cached=False)
            pending = pending_of(head)
            if pending is None or pending.id != interaction_id:
                if cached is not None:
                    # The cache may be behind another replica's write: re-read
                    # before concluding the interaction is not pending.
                    self.cache.drop(session_id)
                    continue
                # Not the pending interaction: only an exact repeat of the
                # accepted result is fine. Sessions compares the digests.
                replay = await self.sessions.complete(
                    scope, session_id, interaction_id, result, lease_epoch, digest
                )
                handed = self._leased_to(head, lease, interaction_id)
                return replay.session, replay.interaction, handed
            decoded = self.engine.decode(head, self.cache.decoded(head))
            write = await self.engine.result(
                head,
                pending,
                result,
                lease_epoch=lease_epoch,
                reported_digest=digest,
                advance=advance,
                load_children=self._loader(scope, head.id),
                lease=lease,
                known=decoded,
            )
            try:
                response = await self._record(
                    scope, head, pending, result, write, decoded, lease_epoch, digest
                )
            except Aborted:
                continue
            except NotFound:
                self.cache.drop(session_id)
                raise
            if response.replayed:
                # ``head`` predates the first write of this report: read again.
                fresh = await self._head(scope, session_id, cached=False) if lease else head
                handed = self._leased_to(fresh, lease, interaction_id)
                return response.session, response.completed, handed
            after: pb.Interaction | Done | None = None
            pending_after = [
                i for i in response.appended if i.status == pb.INTERACTION_STATUS_PENDING
            ]
            if pending_after:
                after = pending_after[-1]
            elif response.session.status != pb.SESSION_STATUS_ACTIVE or advance:
                after = Done(response.session.status, response.session.status_reason)
            return response.session, response.completed, after
        raise Aborted(f"session {session_id} kept changing under concurrent writers; try again")

    async def _record(
        self,
        scope: pb.Scope,
        head: pb.Session,
        pending: pb.Interaction,
        result: pb.Result,
        write: Write,
        decoded: Decoded,
        lease_epoch: int,
        digest: bytes,
    ) -> spb.AdvanceSessionResponse:
        """Write a result's step; a result that cannot be stored fails the session.

        An executor's result over the caps (its files, its output tails) is
        final: refused, the executor drops it and the command runs again once
        its lease lapses, forever. So it is recorded as a small ERROR saying
        why and the session fails. A person's result (no lease) is refused
        instead: they can send a smaller one.
        """
        try:
            return await self._write_or_stop(scope, head, write, decoded)
        except ResourceExhausted as exc:
            if lease_epoch <= 0 or write.complete is None:
                raise
            reason = exc.message
        log.warning("result of %s could not be recorded: %s", pending.step, reason)
        stand_in = self.engine.unrecordable(
            head,
            pending,
            result,
            reason,
            lease_epoch=lease_epoch,
            reported_digest=digest,
            known=decoded,
        )
        return await self._apply(scope, head, stand_in, decoded)

    @staticmethod
    def _leased_to(
        head: pb.Session, lease: LeaseOffer | None, reported: str
    ) -> pb.Interaction | None:
        """For a repeated report: the next command, if it is already leased to the reporter.

        A report is repeated when the answer to the first was lost (an
        orchestrator died after writing). The next command was leased to the
        reporting executor by that first write; handing it back again lets
        the executor run it now instead of after the lease lapses.
        """
        if lease is None:
            return None
        pending = pending_of(head)
        if (
            pending is not None
            and pending.id != reported
            and pending.lease.executor_id == lease.executor_id
        ):
            return pending
        return None

    async def SteerSession(
        self, request: opb.SteerSessionRequest, context: Any
    ) -> opb.SteerSessionResponse:
        require_scope(request.scope)
        require_id("session_id", request.session_id)
        if request.action == pb.CONTROL_ACTION_RETRY_FROM and not request.step:
            raise InvalidArgument("step is required to retry from a step")
        if len(request.reason) > 2000:
            raise InvalidArgument("reason is longer than 2000 characters")
        for _ in range(MAX_ATTEMPTS):
            head = await self._head(request.scope, request.session_id, cached=False)
            write = await self.engine.steer(
                head,
                request.action,
                request.step,
                request.reason,
                self._loader(request.scope, head.id),
            )
            if write is None:
                return opb.SteerSessionResponse(session=_bare(head))
            try:
                response = await self._apply(request.scope, head, write)
            except Aborted:
                continue
            steered = opb.SteerSessionResponse(session=response.session)
            pending = [i for i in response.appended if i.status == pb.INTERACTION_STATUS_PENDING]
            if pending:
                steered.interaction.CopyFrom(pending[-1])
            return steered
        raise Aborted(f"session {request.session_id} kept changing; try again")

    async def Describe(self, request: opb.DescribeRequest, context: Any) -> opb.DescribeResponse:
        return opb.DescribeResponse(
            workflows=[describe(workflow) for workflow in self.engine.registry.workflows()]
        )
