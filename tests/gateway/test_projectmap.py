"""The project map through the gateway: reported scans, the map, next sessions, Finalize's scan.

Real Sessions, the toy orchestrator and the gateway on loopback; the
executor is a raw ``Connect`` stream, so a test decides exactly what a
result carries (the real agent's landing and scan are tested with it in
``tests/agent`` and end to end in ``tests/cli/test_next_drives_the_demo``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from specloom.protoconv import to_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import projectmap_pb2 as mpb
from tests.gateway.conftest import Stack, bearer, eventually

WS = pb.WorkspaceRef(id="ws-0123456789ab", name="api")


def _file(path: str, present: bool = True) -> mpb.FileFact:
    return mpb.FileFact(path=path, present=present, digest=("a" * 64) if present else "")


def _scan(revision: str = "r1", *, with_code: bool = False) -> mpb.ProjectScan:
    """The ledger context, designed, with one component designed (and coded if asked)."""
    scan = mpb.ProjectScan(
        profile="python",
        branch="specloom/main",
        revision=revision,
        scanned_at=to_timestamp(utcnow()),
        files_seen=4,
        files_read=4,
    )
    scan.components.append(
        mpb.ComponentFacts(
            module="ledger",
            type="context",
            design=_file("docs/design/ledger.md"),
            review=_file("docs/review/ledger.md", present=False),
        )
    )
    scan.components.append(
        mpb.ComponentFacts(
            module="ledger.accounts",
            type="module",
            context="ledger",
            design=_file("docs/design/ledger/accounts.md"),
            test=_file("tests/ledger/accounts_test.py", present=False),
            code=_file("src/ledger/accounts.py", present=with_code),
            description="Accounts.",
        )
    )
    return scan


async def _code(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_a_reported_scan_is_the_map_and_says_what_runs_next(stack: Stack) -> None:
    token = await stack.token("acme", "alpha", "alice")
    other = await stack.token("acme", "beta", "bob")
    stub = stack.stub()
    never = await stub.GetProjectMap(
        gpb.GetProjectMapRequest(workspace_id=WS.id), metadata=bearer(token)
    )
    assert not never.map.components
    assert not never.map.HasField("scanned_at")

    reported = await stub.ReportProjectScan(
        gpb.ReportProjectScanRequest(workspace=WS, scan=_scan()), metadata=bearer(token)
    )
    assert reported.components_recorded == 2
    got = await stub.GetProjectMap(
        gpb.GetProjectMapRequest(workspace_id=WS.id), metadata=bearer(token)
    )
    the_map = got.map
    assert the_map.workspace_id == WS.id
    assert the_map.revision == "r1"
    assert [c.facts.module for c in the_map.components] == ["ledger", "ledger.accounts"]
    accounts = the_map.components[1]
    assert not accounts.done
    states = {r.key: r.state for r in accounts.requirements}
    assert states["design"] == mpb.REQUIREMENT_STATE_MET
    assert states["tests"] == mpb.REQUIREMENT_STATE_MISSING

    following = await stub.NextSessions(
        gpb.NextSessionsRequest(workspace_id=WS.id), metadata=bearer(token)
    )
    assert following.sessions
    assert following.map == the_map
    # Planned with the profile the scan read the layout with (the project file
    # stays on the user's machine), so any client can start an entry as it is.
    assert {e.params.fields["profile"].string_value for e in following.sessions} == {"python"}
    limited = await stub.NextSessions(
        gpb.NextSessionsRequest(workspace_id=WS.id, limit=1), metadata=bearer(token)
    )
    assert len(limited.sessions) == 1

    # The scope wall: another project's token sees no map of this workspace.
    elsewhere = await stub.GetProjectMap(
        gpb.GetProjectMapRequest(workspace_id=WS.id), metadata=bearer(other)
    )
    assert not elsewhere.map.components
    nothing = await stub.NextSessions(
        gpb.NextSessionsRequest(workspace_id=WS.id), metadata=bearer(other)
    )
    assert not nothing.sessions


async def test_bad_map_requests_are_invalid_argument(stack: Stack) -> None:
    token = await stack.token()
    stub = stack.stub()
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    md = bearer(token)
    assert await _code(stub.GetProjectMap(gpb.GetProjectMapRequest(), metadata=md)) == invalid
    assert (
        await _code(stub.GetProjectMap(gpb.GetProjectMapRequest(workspace_id="api"), metadata=md))
        == invalid
    )
    assert (
        await _code(
            stub.NextSessions(gpb.NextSessionsRequest(workspace_id=WS.id, limit=-1), metadata=md)
        )
        == invalid
    )
    assert (
        await _code(stub.ReportProjectScan(gpb.ReportProjectScanRequest(scan=_scan()), metadata=md))
        == invalid
    )
    assert (
        await _code(stub.ReportProjectScan(gpb.ReportProjectScanRequest(workspace=WS), metadata=md))
        == invalid
    )
    twice = _scan()
    twice.components.append(twice.components[1])
    assert (
        await _code(
            stub.ReportProjectScan(
                gpb.ReportProjectScanRequest(workspace=WS, scan=twice), metadata=md
            )
        )
        == invalid
    )


class _Executor:
    """A raw executor stream serving :data:`WS`: results are what the test sends."""

    def __init__(self, stack: Stack, token: str) -> None:
        self.outbox: asyncio.Queue[gpb.ConnectRequest | None] = asyncio.Queue()
        self.inbox: asyncio.Queue[gpb.ConnectResponse] = asyncio.Queue()
        self.call = stack.stub().Connect(self._requests(), metadata=bearer(token))
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[gpb.ConnectRequest]:
        yield gpb.ConnectRequest(
            register=gpb.Register(
                name="raw-box", capabilities=["shell", "git"], max_parallel=1, workspaces=[WS]
            )
        )
        while (message := await self.outbox.get()) is not None:
            yield message

    async def _read(self) -> None:
        async for response in self.call:
            await self.inbox.put(response)

    async def next(self, kind: str) -> gpb.ConnectResponse:
        while True:
            response = await asyncio.wait_for(self.inbox.get(), 20)
            if response.WhichOneof("message") == kind:
                return response

    async def close(self) -> None:
        await self.outbox.put(None)
        self.call.cancel()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


async def test_a_results_scan_goes_to_the_map_on_the_side(stack: Stack) -> None:
    token = await stack.token()
    client = stack.client(token)
    stub = stack.stub()
    executor = _Executor(stack, token)
    try:
        await executor.next("welcome")
        started = await client.start_session("Build", {}, workspace=WS)
        given = (await executor.next("assignment")).assignment
        assert given.session.id == started.session.id
        result = pb.Result(status=pb.RESULT_STATUS_OK, stdout="compiled")
        result.project_scan.CopyFrom(_scan("after-compile", with_code=True))
        await executor.outbox.put(
            gpb.ConnectRequest(
                result=gpb.CommandResult(
                    session_id=given.session.id,
                    interaction_id=given.interaction.id,
                    lease_epoch=given.interaction.lease.epoch,
                    result=result,
                )
            )
        )
        ack = (await executor.next("ack")).ack
        assert ack.accepted, ack.message

        async def recorded() -> bool:
            got = await stub.GetProjectMap(
                gpb.GetProjectMapRequest(workspace_id=WS.id), metadata=bearer(token)
            )
            return got.map.revision == "after-compile"

        await eventually(recorded, timeout=10)
        session = await client.get_session(started.session.id)
        compiled = session.interactions[0]
        assert compiled.result.stdout == "compiled"
        assert compiled.result.project_scan.revision == "after-compile"  # stored as reported
        assert session.interactions[-1].step == "Test"

        # A scan Sessions refuses is logged and dropped: the result still counts.
        test_step = (await executor.next("assignment")).assignment
        broken = pb.Result(status=pb.RESULT_STATUS_OK, stdout="tested")
        broken.project_scan.CopyFrom(_scan("broken"))
        broken.project_scan.components.append(broken.project_scan.components[1])
        await executor.outbox.put(
            gpb.ConnectRequest(
                result=gpb.CommandResult(
                    session_id=test_step.session.id,
                    interaction_id=test_step.interaction.id,
                    lease_epoch=test_step.interaction.lease.epoch,
                    result=broken,
                )
            )
        )
        ack = (await executor.next("ack")).ack
        assert ack.accepted, ack.message

        async def finished() -> bool:
            head = await client.get_session(started.session.id, view=pb.INTERACTION_VIEW_NONE)
            return head.status == pb.SESSION_STATUS_COMPLETE

        await eventually(finished, timeout=10)
        got = await stub.GetProjectMap(
            gpb.GetProjectMapRequest(workspace_id=WS.id), metadata=bearer(token)
        )
        assert got.map.revision == "after-compile"
        # The session that reported it touched nothing on the map (its subject is no module).
        assert all(not c.touched_by for c in got.map.components)
    finally:
        await executor.close()
