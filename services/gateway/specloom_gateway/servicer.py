"""GatewayService: the client API, thin over Sessions, orchestrators and Tokens.

Every handler first verifies the caller's token; the token's scope is then
the only scope used, so a session of another project is NOT_FOUND from
Sessions (the wall lives there, and the gateway never widens it). Domain
errors from other services keep their status codes (see ``upstream``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from specloom.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from specloom.projectmap import ProjectFile, next_sessions, project_map
from specloom.protoconv import to_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import gateway_pb2_grpc as gpb_grpc
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1 import tokens_pb2 as tpb
from specloom.validate import require_id, require_scope, require_workspace, require_workspace_id
from specloom.workflow._proto import EXECUTION_MODE_NAMES, EXECUTOR_DRIVEN
from specloom_gateway import starts
from specloom_gateway.auth import Caller
from specloom_gateway.deps import Deps
from specloom_gateway.executors import ExecutorStreams

T = TypeVar("T")

MAX_REASON = 2000
MAX_NAME = 128
MAX_NEXT = 1000
"""Most sessions NextSessions lists (0 asks for every one)."""


def _reason(value: str) -> str:
    if len(value) > MAX_REASON:
        raise InvalidArgument(f"reason is longer than {MAX_REASON} characters")
    return value


def _name(field: str, value: str) -> str:
    # Session types and step names are short identifiers; a long one is a
    # mistake, said as such rather than quoted back whole as "unknown".
    if len(value) > MAX_NAME:
        raise InvalidArgument(f"{field} is {len(value)} characters; at most {MAX_NAME}")
    return value


async def _checked(
    items: AsyncIterator[T], check: Callable[[], Awaitable[None]], every: float
) -> AsyncIterator[T]:
    """``items``, with ``check()`` awaited every ``every`` seconds meanwhile.

    A watch can stay open for days: checked only when it opened, a revoked
    token would keep receiving the session's events and output. ``check``
    raising ends the stream with its error, even while no event comes.
    """
    loop = asyncio.get_running_loop()
    source = aiter(items)
    due = loop.time() + every
    waiting: asyncio.Future[T] | None = None
    try:
        while True:
            if waiting is None:
                waiting = asyncio.ensure_future(anext(source))
            await asyncio.wait({waiting}, timeout=max(0.0, due - loop.time()))
            if waiting.done():
                try:
                    item = waiting.result()
                except StopAsyncIteration:
                    return
                waiting = None
                yield item
            if loop.time() >= due:
                await check()
                due = loop.time() + every
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        closing = getattr(source, "aclose", None)
        if closing is not None:
            await closing()


class GatewayServicer(gpb_grpc.GatewayServiceServicer):
    """The public API (see ``gateway.proto``)."""

    def __init__(self, deps: Deps, streams: ExecutorStreams) -> None:
        self._deps = deps
        self._streams = streams
        self._auth = deps.auth
        self._up = deps.upstream
        self._sessions = deps.upstream.sessions

    # -- helpers ----------------------------------------------------------------------

    async def _head(
        self,
        caller: Caller,
        session_id: str,
        view: int,
        *,
        total_usage: bool = False,
        explain: bool = False,
    ) -> pb.Session:
        """The session in the caller's scope (NOT_FOUND outside it); ``explain``: waiting_for."""
        require_id("session_id", session_id)
        response = await self._up.call(
            self._sessions.FetchSession,
            spb.FetchSessionRequest(
                scope=caller.scope,
                session_id=session_id,
                view=view,  # type: ignore[arg-type]
                include_total_usage=total_usage,
                explain_waiting=explain,
            ),
        )
        return response.session

    async def _steer(
        self, context: Any, session_id: str, action: int, step: str, reason: str
    ) -> pb.Session:
        caller = await self._auth.caller(context)
        _reason(reason)
        if action == pb.CONTROL_ACTION_RETRY_FROM and not step:
            raise InvalidArgument("from_step is required")
        _name("from_step", step)
        head = await self._head(caller, session_id, pb.INTERACTION_VIEW_NONE)
        stub = await self._deps.router.for_session(head.type)
        response = await self._up.call(
            stub.SteerSession,
            opb.SteerSessionRequest(
                scope=caller.scope,
                session_id=session_id,
                action=action,  # type: ignore[arg-type]
                step=step,
                reason=reason,
            ),
        )
        return response.session

    # -- sessions ---------------------------------------------------------------------

    async def StartSession(
        self, request: gpb.StartSessionRequest, context: Any
    ) -> gpb.StartSessionResponse:
        caller = await self._auth.caller(context)
        if not request.type:
            raise InvalidArgument("type is required")
        _name("type", request.type)
        # Unset is agentic, as in the CLI and the SDK: a session nobody said
        # a person would drive is run by the connected executors (unset used
        # to mean manual, and such a session waited for a person forever).
        mode = request.execution_mode or pb.EXECUTION_MODE_AGENTIC
        workspace = None
        if request.HasField("workspace"):
            workspace = require_workspace("workspace", request.workspace)
        stub = await self._deps.router.for_new(request.type)

        async def open_session(claim: pb.ClaimOffer | None) -> opb.OpenSessionResponse:
            return await self._up.call(
                stub.OpenSession,
                opb.OpenSessionRequest(
                    scope=caller.scope,
                    type=request.type,
                    execution_mode=mode,
                    params=request.params,
                    idempotency_key=request.idempotency_key,
                    workspace=workspace,
                    claim=claim,
                ),
            )

        if mode == pb.EXECUTION_MODE_MANUAL:
            # A person runs its commands, no executor: nothing to offer.
            response = await open_session(None)
        else:
            response = await starts.open_offering(self._deps, caller.scope, workspace, open_session)
        return gpb.StartSessionResponse(session=response.session, created=response.created)

    async def GetSession(
        self, request: gpb.GetSessionRequest, context: Any
    ) -> gpb.GetSessionResponse:
        caller = await self._auth.caller(context)
        view = request.view or pb.INTERACTION_VIEW_ALL
        session = await self._head(caller, request.session_id, view, total_usage=True, explain=True)
        return gpb.GetSessionResponse(session=session)

    async def ListSessions(
        self, request: gpb.ListSessionsRequest, context: Any
    ) -> gpb.ListSessionsResponse:
        caller = await self._auth.caller(context)
        response = await self._up.call(
            self._sessions.QuerySessions,
            spb.QuerySessionsRequest(
                scope=caller.scope,
                filter=request.filter,
                page_size=request.page_size,
                page_token=request.page_token,
                explain_waiting=True,
            ),
        )
        return gpb.ListSessionsResponse(
            sessions=response.sessions, next_page_token=response.next_page_token
        )

    async def ListChildren(
        self, request: gpb.ListChildrenRequest, context: Any
    ) -> gpb.ListChildrenResponse:
        caller = await self._auth.caller(context)
        require_id("session_id", request.session_id)
        response = await self._up.call(
            self._sessions.FetchChildren,
            spb.FetchChildrenRequest(
                scope=caller.scope,
                parent_id=request.session_id,
                view=pb.INTERACTION_VIEW_LAST,
                explain_waiting=True,
            ),
        )
        return gpb.ListChildrenResponse(children=response.children)

    async def WatchSession(
        self, request: gpb.WatchSessionRequest, context: Any
    ) -> AsyncIterator[gpb.WatchSessionResponse]:
        caller = await self._auth.caller(context)
        require_id("session_id", request.session_id)
        events = self._up.stream(
            self._sessions.StreamSessionEvents,
            spb.StreamSessionEventsRequest(
                scope=caller.scope,
                session_id=request.session_id,
                include_children=request.include_children,
                include_output=request.include_output,
                explain_waiting=True,
            ),
        )
        every = self._deps.settings.stream_token_check_seconds
        async for item in _checked(events, lambda: self._auth.recheck(caller), every):
            yield gpb.WatchSessionResponse(event=item.event)

    async def ReadOutput(
        self, request: gpb.ReadOutputRequest, context: Any
    ) -> gpb.ReadOutputResponse:
        caller = await self._auth.caller(context)
        require_id("session_id", request.session_id)
        response = await self._up.call(
            self._sessions.FetchOutput,
            spb.FetchOutputRequest(
                scope=caller.scope,
                session_id=request.session_id,
                interaction_id=request.interaction_id,
                after_index=request.after_index if request.HasField("after_index") else None,
                max_bytes=request.max_bytes,
            ),
        )
        return gpb.ReadOutputResponse(chunks=response.chunks, more=response.more)

    async def CancelSession(
        self, request: gpb.CancelSessionRequest, context: Any
    ) -> gpb.CancelSessionResponse:
        caller = await self._auth.caller(context)
        require_id("session_id", request.session_id)
        reason = _reason(request.reason)
        response = await self._up.call(
            self._sessions.CancelSessionTree,
            spb.CancelSessionTreeRequest(
                scope=caller.scope, session_id=request.session_id, reason=reason
            ),
        )
        # Executors on this gateway stop at once; those on other replicas
        # learn it at their next heartbeat (their leases come back lost).
        cancelled = {request.session_id, *response.cancelled_descendant_ids}
        self._streams.cancel_sessions(cancelled, f"session cancelled: {reason or 'by a person'}")
        return gpb.CancelSessionResponse(session=response.session)

    async def PauseSession(
        self, request: gpb.PauseSessionRequest, context: Any
    ) -> gpb.PauseSessionResponse:
        session = await self._steer(
            context, request.session_id, pb.CONTROL_ACTION_PAUSE, "", request.reason
        )
        return gpb.PauseSessionResponse(session=session)

    async def ResumeSession(
        self, request: gpb.ResumeSessionRequest, context: Any
    ) -> gpb.ResumeSessionResponse:
        session = await self._steer(
            context, request.session_id, pb.CONTROL_ACTION_RESUME, "", request.reason
        )
        return gpb.ResumeSessionResponse(session=session)

    async def RetrySession(
        self, request: gpb.RetrySessionRequest, context: Any
    ) -> gpb.RetrySessionResponse:
        session = await self._steer(
            context,
            request.session_id,
            pb.CONTROL_ACTION_RETRY_FROM,
            request.from_step,
            request.reason,
        )
        return gpb.RetrySessionResponse(session=session)

    # -- manual mode ------------------------------------------------------------------

    async def _manual_head(self, caller: Caller, session_id: str) -> pb.Session:
        head = await self._head(caller, session_id, pb.INTERACTION_VIEW_LAST)
        if head.execution_mode in EXECUTOR_DRIVEN:
            mode = EXECUTION_MODE_NAMES[head.execution_mode]
            raise FailedPrecondition(
                f"session {session_id} is {mode}: connected executors run its commands"
            )
        return head

    async def GetNextCommand(
        self, request: gpb.GetNextCommandRequest, context: Any
    ) -> gpb.GetNextCommandResponse:
        caller = await self._auth.caller(context)
        head = await self._manual_head(caller, request.session_id)
        stub = await self._deps.router.for_session(head.type)
        response = await self._up.call(
            stub.NextStep,
            opb.NextStepRequest(scope=caller.scope, session_id=request.session_id),
        )
        if response.HasField("interaction"):
            return gpb.GetNextCommandResponse(interaction=response.interaction)
        return gpb.GetNextCommandResponse(done=response.done)

    async def SubmitResult(
        self, request: gpb.SubmitResultRequest, context: Any
    ) -> gpb.SubmitResultResponse:
        caller = await self._auth.caller(context)
        require_id("interaction_id", request.interaction_id)
        if not request.HasField("result"):
            raise InvalidArgument("result is required")
        head = await self._manual_head(caller, request.session_id)
        pending = head.interactions[-1] if head.interactions else None
        if (
            pending is not None
            and pending.id == request.interaction_id
            and pending.status == pb.INTERACTION_STATUS_PENDING
            and pending.command.WhichOneof("kind") == "spawn_children"
        ):
            raise FailedPrecondition(
                "this step waits for the session's children; the gateway reports it "
                "when every child has finished"
            )
        stub = await self._deps.router.for_session(head.type)
        response = await self._up.call(
            stub.ReportAndAdvance,
            opb.ReportAndAdvanceRequest(
                scope=caller.scope,
                session_id=request.session_id,
                interaction_id=request.interaction_id,
                result=request.result,
            ),
        )
        answer = gpb.SubmitResultResponse(completed=response.completed)
        if response.HasField("interaction"):
            answer.interaction.CopyFrom(response.interaction)
        elif response.HasField("done"):
            answer.done.CopyFrom(response.done)
        return answer

    async def DescribeWorkflows(
        self, request: gpb.DescribeWorkflowsRequest, context: Any
    ) -> gpb.DescribeWorkflowsResponse:
        await self._auth.caller(context)
        router = self._deps.router
        if not router.workflows():
            await router.refresh()
        return gpb.DescribeWorkflowsResponse(workflows=router.workflows())

    # -- tokens -----------------------------------------------------------------------

    async def CreateToken(
        self, request: gpb.CreateTokenRequest, context: Any
    ) -> gpb.CreateTokenResponse:
        caller = await self._auth.admin(context)
        require_scope(request.scope)
        if request.scope.account_id != caller.scope.account_id:
            raise PermissionDenied("tokens can only be created for the caller's own account")
        if request.ttl_seconds < 0:
            raise InvalidArgument("ttl_seconds must not be negative")
        if len(request.name) > 200:
            raise InvalidArgument("name is longer than 200 characters")
        response = await self._up.call(
            self._up.tokens.IssueToken,
            tpb.IssueTokenRequest(
                scope=request.scope,
                admin=request.admin,
                name=request.name,
                ttl_seconds=request.ttl_seconds,
            ),
        )
        return gpb.CreateTokenResponse(token=response.token, info=response.info)

    async def RevokeToken(
        self, request: gpb.RevokeTokenRequest, context: Any
    ) -> gpb.RevokeTokenResponse:
        caller = await self._auth.admin(context)
        require_id("token_id", request.token_id)
        response = await self._up.call(
            self._up.tokens.RetireToken,
            tpb.RetireTokenRequest(token_id=request.token_id, account_id=caller.scope.account_id),
        )
        return gpb.RevokeTokenResponse(info=response.info)

    async def ListTokens(
        self, request: gpb.ListTokensRequest, context: Any
    ) -> gpb.ListTokensResponse:
        caller = await self._auth.admin(context)
        response = await self._up.call(
            self._up.tokens.QueryTokens,
            tpb.QueryTokensRequest(
                account_id=caller.scope.account_id, include_inactive=request.include_inactive
            ),
        )
        return gpb.ListTokensResponse(tokens=response.tokens)

    async def WhoAmI(self, request: gpb.WhoAmIRequest, context: Any) -> gpb.WhoAmIResponse:
        caller = await self._auth.caller(context)
        return gpb.WhoAmIResponse(info=caller.info, server_time=to_timestamp(utcnow()))

    # -- executors --------------------------------------------------------------------

    async def ListExecutors(
        self, request: gpb.ListExecutorsRequest, context: Any
    ) -> gpb.ListExecutorsResponse:
        caller = await self._auth.caller(context)
        response = await self._up.call(
            self._sessions.QueryExecutors, spb.QueryExecutorsRequest(scope=caller.scope)
        )
        return gpb.ListExecutorsResponse(executors=response.executors)

    # -- project map ------------------------------------------------------------------

    async def _facts(self, caller: Caller, workspace_id: str) -> spb.FetchProjectFactsResponse:
        """The workspace's facts in the caller's project (a never-scanned map elsewhere)."""
        require_workspace_id("workspace_id", workspace_id)
        response: spb.FetchProjectFactsResponse = await self._up.call(
            self._sessions.FetchProjectFacts,
            spb.FetchProjectFactsRequest(scope=caller.scope, workspace_id=workspace_id),
        )
        return response

    async def ReportProjectScan(
        self, request: gpb.ReportProjectScanRequest, context: Any
    ) -> gpb.ReportProjectScanResponse:
        caller = await self._auth.caller(context)
        if not request.HasField("workspace"):
            raise InvalidArgument("workspace is required")
        workspace = require_workspace("workspace", request.workspace)
        if not request.HasField("scan"):
            raise InvalidArgument("scan is required")
        response = await self._up.call(
            self._sessions.RecordProjectScan,
            spb.RecordProjectScanRequest(
                scope=caller.scope, workspace_id=workspace.id, scan=request.scan
            ),
        )
        return gpb.ReportProjectScanResponse(components_recorded=response.components_recorded)

    async def GetProjectMap(
        self, request: gpb.GetProjectMapRequest, context: Any
    ) -> gpb.GetProjectMapResponse:
        caller = await self._auth.caller(context)
        facts = await self._facts(caller, request.workspace_id)
        return gpb.GetProjectMapResponse(map=project_map(request.workspace_id, facts))

    async def NextSessions(
        self, request: gpb.NextSessionsRequest, context: Any
    ) -> gpb.NextSessionsResponse:
        caller = await self._auth.caller(context)
        if not 0 <= request.limit <= MAX_NEXT:
            raise InvalidArgument(f"limit must be between 0 and {MAX_NEXT}, got {request.limit}")
        facts = await self._facts(caller, request.workspace_id)
        the_map = project_map(request.workspace_id, facts)
        # The project file stays on the user's machine, but the scan said which
        # profile it read the layout with: the entries carry it, so a session
        # started from them (by the web console too) works in the project's
        # language, as one `specloom next --start` starts does.
        scanned = ProjectFile(profile=facts.last_scan.profile) if facts.scanned else None
        found = next_sessions(the_map, list(facts.unfinished), scanned, request.limit)
        return gpb.NextSessionsResponse(sessions=found, map=the_map)

    def Connect(
        self, request_iterator: AsyncIterator[gpb.ConnectRequest], context: Any
    ) -> AsyncIterator[gpb.ConnectResponse]:
        return self._streams.connect(request_iterator, context)
