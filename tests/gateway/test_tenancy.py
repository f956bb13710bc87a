"""Auth and the scope wall: every client RPC, with the wrong project's token and with none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import projectmap_pb2 as mpb
from tests.gateway.conftest import Stack, bearer, eventually, make_repo

Call = Callable[[Any, tuple[tuple[str, str], ...]], Awaitable[Any]]


async def _code(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _stream_code(call: Any) -> grpc.StatusCode:
    try:
        async for _ in call:
            return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _b_session(stack: Stack, token_b: str, repo: Path) -> tuple[pb.Session, pb.Interaction]:
    """A manual session of project B with a completed step (so it has output refs)."""
    client = stack.client(token_b)
    started = await client.start_session("Build", {}, mode="manual", idempotency_key="shared-key")
    first = await client.next_command(started.session.id)
    assert isinstance(first, pb.Interaction)
    await client.submit_result(started.session.id, first.id, report("ok", stdout="done"))
    pending = await client.next_command(started.session.id)
    assert isinstance(pending, pb.Interaction)
    return started.session, pending


def _unary_calls(session_id: str, interaction_id: str) -> dict[str, Call]:
    """Every unary client RPC aimed at one session."""
    sid, iid = session_id, interaction_id
    ok = pb.Result(status=pb.RESULT_STATUS_OK)
    return {
        "GetSession": lambda s, m: s.GetSession(gpb.GetSessionRequest(session_id=sid), metadata=m),
        "ListChildren": lambda s, m: s.ListChildren(
            gpb.ListChildrenRequest(session_id=sid), metadata=m
        ),
        "ReadOutput(session)": lambda s, m: s.ReadOutput(
            gpb.ReadOutputRequest(session_id=sid), metadata=m
        ),
        "ReadOutput(interaction)": lambda s, m: s.ReadOutput(
            gpb.ReadOutputRequest(session_id=sid, interaction_id=iid, after_index=-1), metadata=m
        ),
        "CancelSession": lambda s, m: s.CancelSession(
            gpb.CancelSessionRequest(session_id=sid, reason="x"), metadata=m
        ),
        "PauseSession": lambda s, m: s.PauseSession(
            gpb.PauseSessionRequest(session_id=sid), metadata=m
        ),
        "ResumeSession": lambda s, m: s.ResumeSession(
            gpb.ResumeSessionRequest(session_id=sid), metadata=m
        ),
        "RetrySession": lambda s, m: s.RetrySession(
            gpb.RetrySessionRequest(session_id=sid, from_step="Compile"), metadata=m
        ),
        "GetNextCommand": lambda s, m: s.GetNextCommand(
            gpb.GetNextCommandRequest(session_id=sid), metadata=m
        ),
        "SubmitResult": lambda s, m: s.SubmitResult(
            gpb.SubmitResultRequest(session_id=sid, interaction_id=iid, result=ok), metadata=m
        ),
    }


async def test_another_projects_session_is_not_found_for_every_rpc(
    stack: Stack, tmp_path: Path
) -> None:
    token_a = await stack.token("acme", "alpha", "alice")
    token_b = await stack.token("acme", "beta", "bob")
    token_c = await stack.token("globex", "beta", "carol")
    session_b, pending = await _b_session(stack, token_b, tmp_path)
    stub = stack.stub()
    for other in (token_a, token_c):
        for name, call in _unary_calls(session_b.id, pending.id).items():
            code = await _code(call(stub, bearer(other)))
            assert code == grpc.StatusCode.NOT_FOUND, name
        watch = stub.WatchSession(
            gpb.WatchSessionRequest(session_id=session_b.id, include_output=True),
            metadata=bearer(other),
        )
        assert await _stream_code(watch) == grpc.StatusCode.NOT_FOUND
        listed = await stub.ListSessions(gpb.ListSessionsRequest(), metadata=bearer(other))
        assert session_b.id not in {s.id for s in listed.sessions}
        # The same idempotency key in another project is another session.
        started = await stub.StartSession(
            gpb.StartSessionRequest(
                type="Build",
                execution_mode=pb.EXECUTION_MODE_MANUAL,
                idempotency_key="shared-key",
            ),
            metadata=bearer(other),
        )
        assert started.created
        assert started.session.id != session_b.id

    # Nothing above changed B's session: still active, same pending step.
    b = await stack.client(token_b).get_session(session_b.id)
    assert b.status == pb.SESSION_STATUS_ACTIVE
    assert b.interactions[-1].id == pending.id
    assert b.interactions[-1].status == pb.INTERACTION_STATUS_PENDING


async def test_an_executor_cannot_take_or_report_another_projects_work(
    stack: Stack, tmp_path: Path
) -> None:
    token_a = await stack.token("acme", "alpha", "alice")
    token_b = await stack.token("acme", "beta", "bob")
    repo = make_repo(tmp_path / "repo")
    await stack.agent(token_a, repo, "alpha-box", max_parallel=4)
    client_b = stack.client(token_b)
    started = await client_b.start_session("Build", {}, mode="agentic")
    await asyncio.sleep(1.0)  # several claim sweeps
    session = await client_b.get_session(started.session.id)
    assert session.interactions[-1].status == pb.INTERACTION_STATUS_PENDING
    assert not session.interactions[-1].lease.executor_id
    assert not stack.assignments()

    # A raw executor of project A reports on B's pending interaction.
    stub = stack.stub()
    outbox: asyncio.Queue[gpb.ConnectRequest | None] = asyncio.Queue()
    await outbox.put(gpb.ConnectRequest(register=gpb.Register(name="rogue", max_parallel=1)))
    await outbox.put(
        gpb.ConnectRequest(
            result=gpb.CommandResult(
                session_id=started.session.id,
                interaction_id=session.interactions[-1].id,
                lease_epoch=1,
                result=pb.Result(status=pb.RESULT_STATUS_OK),
            )
        )
    )

    async def requests() -> Any:
        while (message := await outbox.get()) is not None:
            yield message

    call = stub.Connect(requests(), metadata=bearer(token_a))
    acks = []
    async for response in call:
        if response.WhichOneof("message") == "ack":
            acks.append(response.ack)
            break
    await outbox.put(None)
    call.cancel()
    assert len(acks) == 1
    assert not acks[0].accepted
    assert acks[0].code == "NOT_FOUND"
    still = await client_b.get_session(started.session.id)
    assert still.interactions[-1].status == pb.INTERACTION_STATUS_PENDING


async def test_no_token_or_a_bad_one_is_unauthenticated_everywhere(stack: Stack) -> None:
    stub = stack.stub()
    bad = bearer("slm_notatoken_00000000000000000000")
    for metadata in ((), bad, (("authorization", "Basic abc"),)):
        for name, call in _unary_calls("some-id", "other-id").items():
            assert await _code(call(stub, metadata)) == grpc.StatusCode.UNAUTHENTICATED, name
        others: dict[str, Awaitable[Any]] = {
            "StartSession": stub.StartSession(
                gpb.StartSessionRequest(type="Build"), metadata=metadata
            ),
            "ListSessions": stub.ListSessions(gpb.ListSessionsRequest(), metadata=metadata),
            "DescribeWorkflows": stub.DescribeWorkflows(
                gpb.DescribeWorkflowsRequest(), metadata=metadata
            ),
            "WhoAmI": stub.WhoAmI(gpb.WhoAmIRequest(), metadata=metadata),
            "CreateToken": stub.CreateToken(gpb.CreateTokenRequest(), metadata=metadata),
            "RevokeToken": stub.RevokeToken(
                gpb.RevokeTokenRequest(token_id="x"), metadata=metadata
            ),
            "ListExecutors": stub.ListExecutors(gpb.ListExecutorsRequest(), metadata=metadata),
            "ReportProjectScan": stub.ReportProjectScan(
                gpb.ReportProjectScanRequest(
                    workspace=pb.WorkspaceRef(id="ws-0123456789ab"),
                    scan=mpb.ProjectScan(profile="python"),
                ),
                metadata=metadata,
            ),
            "GetProjectMap": stub.GetProjectMap(
                gpb.GetProjectMapRequest(workspace_id="ws-0123456789ab"), metadata=metadata
            ),
            "NextSessions": stub.NextSessions(
                gpb.NextSessionsRequest(workspace_id="ws-0123456789ab"), metadata=metadata
            ),
        }
        for name, pending in others.items():
            assert await _code(pending) == grpc.StatusCode.UNAUTHENTICATED, name
        watch = stub.WatchSession(gpb.WatchSessionRequest(session_id="x"), metadata=metadata)
        assert await _stream_code(watch) == grpc.StatusCode.UNAUTHENTICATED

        async def register() -> Any:
            yield gpb.ConnectRequest(register=gpb.Register(name="x", max_parallel=1))

        connect = stub.Connect(register(), metadata=metadata)
        assert await _stream_code(connect) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_revoked_token_stops_working_on_the_next_call(stack: Stack, tmp_path: Path) -> None:
    admin = await stack.token("acme", "alpha", "root", admin=True)
    stub = stack.stub()
    made = await stub.CreateToken(
        gpb.CreateTokenRequest(
            scope=pb.Scope(account_id="acme", project_id="alpha", user_id="ci"), name="ci"
        ),
        metadata=bearer(admin),
    )
    token = made.token
    who = await stub.WhoAmI(gpb.WhoAmIRequest(), metadata=bearer(token))
    assert who.info.id == made.info.id
    assert who.info.scope.user_id == "ci"
    # An executor on the token, connected before the revocation.
    repo = make_repo(tmp_path / "repo")
    agent = await stack.agent(token, repo, "ci-box")
    agent_task = next(task for loop, task in stack.agents if loop is agent)

    await stub.RevokeToken(gpb.RevokeTokenRequest(token_id=made.info.id), metadata=bearer(admin))
    code = await _code(stub.WhoAmI(gpb.WhoAmIRequest(), metadata=bearer(token)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code = await _code(stub.ListSessions(gpb.ListSessionsRequest(), metadata=bearer(token)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    # The open stream ends at its next heartbeat; the agent treats that as fatal.
    assert await asyncio.wait_for(agent_task, 10) == 2


async def test_token_administration_needs_an_admin_of_the_same_account(stack: Stack) -> None:
    user = await stack.token("acme", "alpha", "alice")
    admin = await stack.token("acme", "alpha", "root", admin=True)
    other_admin = await stack.token("globex", "main", "boss", admin=True)
    stub = stack.stub()
    scope = pb.Scope(account_id="acme", project_id="beta", user_id="bot")
    request = gpb.CreateTokenRequest(scope=scope, name="bot")
    assert (
        await _code(stub.CreateToken(request, metadata=bearer(user)))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        await _code(stub.CreateToken(request, metadata=bearer(other_admin)))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    made = await stub.CreateToken(request, metadata=bearer(admin))
    assert made.info.scope == scope
    assert not made.info.admin
    revoke = gpb.RevokeTokenRequest(token_id=made.info.id)
    assert (
        await _code(stub.RevokeToken(revoke, metadata=bearer(user)))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        await _code(stub.RevokeToken(revoke, metadata=bearer(other_admin)))
        == grpc.StatusCode.NOT_FOUND
    )
    revoked = await stub.RevokeToken(revoke, metadata=bearer(admin))
    assert revoked.info.HasField("revoked_at")
    await eventually(lambda: _is_unauthenticated(stub, made.token), timeout=5)


async def _is_unauthenticated(stub: Any, token: str) -> bool:
    code = await _code(stub.WhoAmI(gpb.WhoAmIRequest(), metadata=bearer(token)))
    return bool(code == grpc.StatusCode.UNAUTHENTICATED)


@pytest.mark.parametrize("field", ["", "x" * 65])
async def test_malformed_ids_are_invalid_argument(stack: Stack, field: str) -> None:
    token = await stack.token()
    stub = stack.stub()
    code = await _code(
        stub.GetSession(gpb.GetSessionRequest(session_id=field), metadata=bearer(token))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
