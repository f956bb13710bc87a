"""Request builders for the Sessions tests (plain protos, no shortcuts around the API)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc
import pytest

from specloom.ids import new_id
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest

T = TypeVar("T")


def scope(account: str | None = None, project: str = "proj", user: str = "alice") -> pb.Scope:
    """A scope of a fresh account unless one is named."""
    return pb.Scope(
        account_id=account or f"acct-{new_id()[-12:]}", project_id=project, user_id=user
    )


def shell(step: str, *argv: str) -> pb.Command:
    command = pb.Command(step=step)
    command.shell.argv.extend(argv or ("make", step.lower()))
    return command


def pending(
    step: str = "Build",
    *,
    dispatch: int = spb.DISPATCH_UNSPECIFIED,
    capability: str = "",
    lease: tuple[str, int] | None = None,
) -> spb.NewInteraction:
    """A pending command to append."""
    item = spb.NewInteraction(
        step=step,
        command=shell(step),
        dispatch=spb.Dispatch.ValueType(dispatch),
        required_capability=capability,
    )
    if lease is not None:
        item.lease.CopyFrom(spb.LeaseGrant(executor_id=lease[0], ttl_seconds=lease[1]))
    return item


def control(action: int = pb.CONTROL_ACTION_PAUSE, reason: str = "") -> spb.NewInteraction:
    """A control record (completed on insert)."""
    kind = pb.ControlAction.ValueType(action)
    command = pb.Command(step=f"control:{pb.ControlAction.Name(kind)}")
    command.control.CopyFrom(pb.ControlRecord(action=kind, reason=reason))
    return spb.NewInteraction(
        step=command.step, command=command, immediate_result=pb.Result(status=pb.RESULT_STATUS_OK)
    )


def ok(stdout: str = "done") -> pb.Result:
    return pb.Result(status=pb.RESULT_STATUS_OK, stdout=stdout)


def error(message: str = "broken") -> pb.Result:
    return pb.Result(status=pb.RESULT_STATUS_ERROR, error_message=message)


async def create(
    service: SessionsUnderTest,
    where: pb.Scope,
    *,
    first: spb.NewInteraction | None = None,
    key: str = "",
    parent_id: str = "",
    type: str = "Build",
    mode: int = pb.EXECUTION_MODE_MANUAL,
    name: str = "",
) -> pb.Session:
    """Create a session (with a first pending command unless ``first`` says otherwise)."""
    request = spb.CreateSessionRequest(
        scope=where,
        type=type,
        execution_mode=pb.ExecutionMode.ValueType(mode),
        parent_id=parent_id,
        name=name,
        definition_version=1,
        idempotency_key=key,
        first=first if first is not None else pending(),
    )
    response = await service.stub.CreateSession(request, metadata=service.metadata)
    return response.session


async def fetch(
    service: SessionsUnderTest,
    where: pb.Scope,
    session_id: str,
    view: int = pb.INTERACTION_VIEW_ALL,
) -> pb.Session:
    response = await service.stub.FetchSession(
        spb.FetchSessionRequest(
            scope=where, session_id=session_id, view=pb.InteractionView.ValueType(view)
        ),
        metadata=service.metadata,
    )
    return response.session


async def step(
    service: SessionsUnderTest,
    where: pb.Scope,
    session: pb.Session,
    result: pb.Result | None = None,
    *,
    next_step: spb.NewInteraction | None = None,
    finish: tuple[int, str] | None = None,
    **extra: Any,
) -> spb.AdvanceSessionResponse:
    """Complete the session's pending interaction and append the next (one AdvanceSession)."""
    head = await fetch(service, where, session.id, pb.INTERACTION_VIEW_LAST)
    request = spb.AdvanceSessionRequest(
        scope=where, session_id=session.id, expected_version=head.version, **extra
    )
    last = head.interactions[-1] if head.interactions else None
    if result is not None and last is not None:
        request.complete.CopyFrom(spb.CompletePart(interaction_id=last.id, result=result))
    if next_step is not None:
        request.append.append(next_step)
    if finish is not None:
        status = pb.SessionStatus.ValueType(finish[0])
        request.finish.CopyFrom(spb.Finish(status=status, reason=finish[1]))
    return await service.stub.AdvanceSession(request, metadata=service.metadata)


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status code a call fails with (fails the test if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call fails with (fails the test if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


@contextlib.asynccontextmanager
async def events_of(
    service: SessionsUnderTest, where: pb.Scope, session_id: str, **flags: bool
) -> AsyncIterator[AsyncIterator[pb.SessionEvent]]:
    """A watch stream's events; the call is cancelled when the block ends."""
    call = service.stub.StreamSessionEvents(
        spb.StreamSessionEventsRequest(scope=where, session_id=session_id, **flags),
        metadata=service.metadata,
    )

    async def events() -> AsyncIterator[pb.SessionEvent]:
        async for response in call:
            yield response.event

    try:
        yield events()
    finally:
        call.cancel()
