"""The async gateway client."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from specloom.errors import InvalidArgument, SpecloomError, Unavailable
from specloom.protoconv import JsonValue, dict_to_struct, to_timestamp
from specloom.rpc import metadata as md
from specloom.rpc.errors import error_of
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import projectmap_pb2 as mpb
from specloom.v1 import tokens_pb2 as tpb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub

if TYPE_CHECKING:
    from specloom.v1.gateway_pb2_grpc import GatewayServiceAsyncStub

T = TypeVar("T")

MODES: Mapping[str, int] = {
    "manual": pb.EXECUTION_MODE_MANUAL,
    "auto": pb.EXECUTION_MODE_AUTO,
    "agentic": pb.EXECUTION_MODE_AGENTIC,
}
STATUSES: Mapping[str, int] = {
    "active": pb.SESSION_STATUS_ACTIVE,
    "paused": pb.SESSION_STATUS_PAUSED,
    "complete": pb.SESSION_STATUS_COMPLETE,
    "failed": pb.SESSION_STATUS_FAILED,
    "cancelled": pb.SESSION_STATUS_CANCELLED,
}


def mode_of(name: str) -> int:
    """The ExecutionMode for ``manual``, ``auto`` or ``agentic``."""
    try:
        return MODES[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown execution mode {name!r}; use one of: {', '.join(MODES)}"
        ) from None


def status_name(status: int) -> str:
    """``active``, ``paused``, ``complete``, ``failed`` or ``cancelled``."""
    for name, value in STATUSES.items():
        if value == status:
            return name
    return "unknown"


class Client:
    """An authenticated connection to a specloom gateway."""

    def __init__(
        self,
        address: str,
        token: str | None,
        *,
        tls: bool = False,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.address = address
        self._timeout = timeout
        # A channel passed in is shared (a web server calls for many people over
        # one connection, each call with its own token): close() leaves it open.
        self._owns_channel = channel is None
        options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        if channel is not None:
            self._channel = channel
        elif tls or ca_file is not None:
            root = ca_file.read_bytes() if ca_file is not None else None
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.aio.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        self._stub: GatewayServiceAsyncStub = GatewayServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            ((md.AUTHORIZATION, f"Bearer {token}"),) if token else ()
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (unless it was passed in, and so is shared)."""
        if self._owns_channel:
            await self._channel.close(None)

    def _error(self, exc: grpc.aio.AioRpcError) -> SpecloomError:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return Unavailable(
                f"cannot reach the specloom gateway at {self.address} ({exc.details()}); "
                "is `specloom up` running, and is --gateway right?"
            )
        return error_of(exc)

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    # -- sessions ------------------------------------------------------------------

    async def start_session(
        self,
        session_type: str,
        params: Mapping[str, JsonValue],
        *,
        mode: str = "agentic",
        idempotency_key: str = "",
        workspace: pb.WorkspaceRef | None = None,
    ) -> gpb.StartSessionResponse:
        """Start a session of ``session_type`` (see :meth:`describe`).

        ``workspace`` (see :func:`specloom.workspaces.identify`) is where its
        commands run: only executors serving it claim them. None: the first
        executor with workspaces to claim one pins it to its default.
        """
        request = gpb.StartSessionRequest(
            type=session_type,
            execution_mode=mode_of(mode),  # type: ignore[arg-type]
            idempotency_key=idempotency_key,
            workspace=workspace,
        )
        dict_to_struct(params, request.params)
        response: gpb.StartSessionResponse = await self._call(self._stub.StartSession, request)
        return response

    async def get_session(self, session_id: str, view: int = pb.INTERACTION_VIEW_ALL) -> pb.Session:
        """A session with its history."""
        response: gpb.GetSessionResponse = await self._call(
            self._stub.GetSession,
            gpb.GetSessionRequest(session_id=session_id, view=view),  # type: ignore[arg-type]
        )
        return response.session

    async def list_sessions(
        self,
        *,
        statuses: Sequence[str] = (),
        types: Sequence[str] = (),
        parent_id: str = "",
        top_level_only: bool = False,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        user_id: str = "",
        workspace_id: str = "",
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[pb.Session], str]:
        """One page of sessions, newest first, and the next page's token."""
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise InvalidArgument(
                f"unknown status {unknown[0]!r}; use one of: {', '.join(STATUSES)}"
            )
        flt = pb.SessionFilter(
            statuses=[STATUSES[s] for s in statuses],  # type: ignore[misc]
            types=list(types),
            parent_id=parent_id,
            top_level_only=top_level_only,
            user_id=user_id,
            workspace_id=workspace_id,
        )
        after = to_timestamp(created_after)
        before = to_timestamp(created_before)
        if after is not None:
            flt.created_after.CopyFrom(after)
        if before is not None:
            flt.created_before.CopyFrom(before)
        response: gpb.ListSessionsResponse = await self._call(
            self._stub.ListSessions,
            gpb.ListSessionsRequest(filter=flt, page_size=page_size, page_token=page_token),
        )
        return list(response.sessions), response.next_page_token

    async def children(self, session_id: str) -> list[pb.Session]:
        """A session's children, oldest first."""
        response: gpb.ListChildrenResponse = await self._call(
            self._stub.ListChildren, gpb.ListChildrenRequest(session_id=session_id)
        )
        return list(response.children)

    async def watch(
        self, session_id: str, *, include_children: bool = False, include_output: bool = False
    ) -> AsyncIterator[pb.SessionEvent]:
        """Live events of a session: a snapshot first, then every change."""
        call = self._stub.WatchSession(
            gpb.WatchSessionRequest(
                session_id=session_id,
                include_children=include_children,
                include_output=include_output,
            ),
            metadata=self._metadata,
        )
        try:
            async for response in call:
                yield response.event
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        finally:
            call.cancel()

    async def read_output(
        self,
        session_id: str,
        interaction_id: str = "",
        after_index: int | None = None,
        max_bytes: int = 0,
    ) -> tuple[list[pb.OutputChunk], bool]:
        """Stored output chunks and whether more remain."""
        response: gpb.ReadOutputResponse = await self._call(
            self._stub.ReadOutput,
            gpb.ReadOutputRequest(
                session_id=session_id,
                interaction_id=interaction_id,
                after_index=after_index,
                max_bytes=max_bytes,
            ),
        )
        return list(response.chunks), response.more

    async def cancel(self, session_id: str, reason: str = "") -> pb.Session:
        """Cancel a session and its children."""
        response: gpb.CancelSessionResponse = await self._call(
            self._stub.CancelSession, gpb.CancelSessionRequest(session_id=session_id, reason=reason)
        )
        return response.session

    async def pause(self, session_id: str, reason: str = "") -> pb.Session:
        """Pause a session (a running step finishes first)."""
        response: gpb.PauseSessionResponse = await self._call(
            self._stub.PauseSession, gpb.PauseSessionRequest(session_id=session_id, reason=reason)
        )
        return response.session

    async def resume(self, session_id: str, reason: str = "") -> pb.Session:
        """Resume a paused or failed session; loop counters restart."""
        response: gpb.ResumeSessionResponse = await self._call(
            self._stub.ResumeSession,
            gpb.ResumeSessionRequest(session_id=session_id, reason=reason),
        )
        return response.session

    async def retry(self, session_id: str, from_step: str, reason: str = "") -> pb.Session:
        """Run a session again from ``from_step``."""
        response: gpb.RetrySessionResponse = await self._call(
            self._stub.RetrySession,
            gpb.RetrySessionRequest(session_id=session_id, from_step=from_step, reason=reason),
        )
        return response.session

    async def next_command(self, session_id: str) -> pb.Interaction | opb.Done:
        """Manual mode: the interaction to carry out, or Done."""
        response: gpb.GetNextCommandResponse = await self._call(
            self._stub.GetNextCommand, gpb.GetNextCommandRequest(session_id=session_id)
        )
        return response.interaction if response.HasField("interaction") else response.done

    async def submit_result(
        self, session_id: str, interaction_id: str, result: pb.Result
    ) -> gpb.SubmitResultResponse:
        """Manual mode: report a result; the response says what comes next."""
        response: gpb.SubmitResultResponse = await self._call(
            self._stub.SubmitResult,
            gpb.SubmitResultRequest(
                session_id=session_id, interaction_id=interaction_id, result=result
            ),
        )
        return response

    async def describe(self) -> list[pb.WorkflowDescription]:
        """Every session type served, with its step graph."""
        response: gpb.DescribeWorkflowsResponse = await self._call(
            self._stub.DescribeWorkflows, gpb.DescribeWorkflowsRequest()
        )
        return list(response.workflows)

    # -- tokens --------------------------------------------------------------------

    async def create_token(
        self, scope: pb.Scope, *, admin: bool = False, name: str = "", ttl_seconds: int = 0
    ) -> gpb.CreateTokenResponse:
        """Admin: create a token (the secret is in the response, once)."""
        response: gpb.CreateTokenResponse = await self._call(
            self._stub.CreateToken,
            gpb.CreateTokenRequest(scope=scope, admin=admin, name=name, ttl_seconds=ttl_seconds),
        )
        return response

    async def revoke_token(self, token_id: str) -> tpb.TokenInfo:
        """Admin: revoke a token of the caller's account."""
        response: gpb.RevokeTokenResponse = await self._call(
            self._stub.RevokeToken, gpb.RevokeTokenRequest(token_id=token_id)
        )
        return response.info

    async def executors(self) -> list[pb.ExecutorPresence]:
        """The executors connected for this project, with the commands each one runs."""
        response: gpb.ListExecutorsResponse = await self._call(
            self._stub.ListExecutors, gpb.ListExecutorsRequest()
        )
        return list(response.executors)

    # -- project map ---------------------------------------------------------------

    async def report_project_scan(self, workspace: pb.WorkspaceRef, scan: mpb.ProjectScan) -> int:
        """Record a scan of ``workspace``'s checkout; returns the component records written."""
        response: gpb.ReportProjectScanResponse = await self._call(
            self._stub.ReportProjectScan,
            gpb.ReportProjectScanRequest(workspace=workspace, scan=scan),
        )
        return response.components_recorded

    async def project_map(self, workspace_id: str) -> mpb.ProjectMap:
        """The workspace's map: each component and where its requirements stand."""
        response: gpb.GetProjectMapResponse = await self._call(
            self._stub.GetProjectMap, gpb.GetProjectMapRequest(workspace_id=workspace_id)
        )
        return response.map

    async def next_sessions(
        self, workspace_id: str, limit: int = 0
    ) -> tuple[list[mpb.NextSession], mpb.ProjectMap]:
        """The sessions to run next in the workspace (dependency order), and the map."""
        response: gpb.NextSessionsResponse = await self._call(
            self._stub.NextSessions,
            gpb.NextSessionsRequest(workspace_id=workspace_id, limit=limit),
        )
        return list(response.sessions), response.map

    async def list_tokens(self, *, include_inactive: bool = False) -> list[tpb.TokenInfo]:
        """Admin: the tokens of the caller's account, oldest first (never secrets)."""
        response: gpb.ListTokensResponse = await self._call(
            self._stub.ListTokens, gpb.ListTokensRequest(include_inactive=include_inactive)
        )
        return list(response.tokens)

    async def whoami(self) -> tpb.TokenInfo:
        """The caller's own token description."""
        return (await self.whoami_with_time()).info

    async def whoami_with_time(self) -> gpb.WhoAmIResponse:
        """The caller's token description and the gateway's clock (``server_time``)."""
        response: gpb.WhoAmIResponse = await self._call(self._stub.WhoAmI, gpb.WhoAmIRequest())
        return response
