"""Calls between services in one process (``specloom up``) skip loopback gRPC
and keep its contract: the same answers, codes, credential check, caps and
deadlines as the same call over the wire to the same server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from specloom.errors import NotFound
from specloom.rpc.channels import ChannelPool
from specloom.rpc.local import LocalChannel
from specloom.rpc.server import GrpcServer
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1 import sessions_pb2_grpc as spb_grpc

if TYPE_CHECKING:
    from specloom.v1.sessions_pb2_grpc import SessionsServiceAsyncStub

SECRET = "local-calls-test-secret"
CAP = 64 * 1024
SERVICE = "specloom.v1.SessionsService"


class Probe(spb_grpc.SessionsServiceServicer):
    """A Sessions servicer whose answer depends on the session id asked for."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.cancelled = asyncio.Event()

    async def FetchSession(
        self, request: spb.FetchSessionRequest, context: Any
    ) -> spb.FetchSessionResponse:
        self.tasks.append(asyncio.current_task())
        asked = request.session_id
        request.session_id = "changed-by-the-callee"  # must not reach the caller's message
        if asked == "missing":
            raise NotFound(f"session {asked} does not exist")
        if asked == "broken":
            raise RuntimeError("a bug in the callee")
        if asked == "slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        session = pb.Session(id=asked, type="Probe", version=3)
        if asked == "huge":
            session.params["blob"] = "x" * (2 * CAP)
        return spb.FetchSessionResponse(session=session)

    async def WatchWork(
        self, request: spb.WatchWorkRequest, context: Any
    ) -> AsyncIterator[spb.WatchWorkResponse]:
        self.tasks.append(asyncio.current_task())
        yield spb.WatchWorkResponse(account_id="a1", project_id="p1")


@dataclass
class Caller:
    """A client of the probe's server, local or over the wire."""

    stub: SessionsServiceAsyncStub
    metadata: tuple[tuple[str, str], ...]

    async def fetch(self, session_id: str, **options: Any) -> spb.FetchSessionResponse:
        return await self.stub.FetchSession(_ask(session_id), metadata=self.metadata, **options)

    async def outcome(self, request: spb.FetchSessionRequest, **options: Any) -> Any:
        """The answer, or the refusal's code and details."""
        try:
            return await self.stub.FetchSession(request, metadata=self.metadata, **options)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details()


@dataclass
class Host:
    server: GrpcServer
    probe: Probe
    target: str
    pools: list[ChannelPool] = field(default_factory=list)

    def caller(self, *, local: bool, secret: str | None = SECRET) -> Caller:
        pool = ChannelPool(internal_secret=secret, max_message_bytes=CAP)
        if local:
            pool.serve_locally(self.target, self.server.local)
        self.pools.append(pool)
        channel = pool.get(self.target)
        assert isinstance(channel, LocalChannel) == local
        stub: SessionsServiceAsyncStub = spb_grpc.SessionsServiceStub(channel)
        return Caller(stub, pool.metadata)


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    server = GrpcServer("127.0.0.1:0", internal_secret=SECRET, max_message_bytes=CAP)
    probe = Probe()  # type: ignore[abstract]  # FetchSession and WatchWork only
    server.add(SERVICE, lambda s: spb_grpc.add_SessionsServiceServicer_to_server(probe, s))
    port = await server.start()
    found = Host(server, probe, f"127.0.0.1:{port}")
    try:
        yield found
    finally:
        for pool in found.pools:
            await pool.close()
        await server.stop(0)


def _ask(session_id: str) -> spb.FetchSessionRequest:
    return spb.FetchSessionRequest(scope=pb.Scope(account_id="a1"), session_id=session_id)


async def test_a_call_to_a_method_served_here_runs_in_the_callers_task(host: Host) -> None:
    request = _ask("s1")
    local = await host.caller(local=True).outcome(request)
    wire = await host.caller(local=False).outcome(request)
    assert local == wire
    assert local.session.id == "s1"
    # No network: the handler ran in this very task. Over the wire it runs in
    # a task of the server's.
    local_task, wire_task = host.probe.tasks
    assert local_task is asyncio.current_task()
    assert wire_task is not asyncio.current_task()
    # The callee got its own copy of the request, as it would from the wire.
    assert request.session_id == "s1"


def _cases() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "missing", {}
    yield "broken", {}
    yield "huge", {}  # the answer is over the cap
    yield "slow", {"timeout": 0.3}


@pytest.mark.parametrize(("session_id", "options"), list(_cases()))
async def test_refusals_arrive_as_they_do_over_the_wire(
    host: Host, session_id: str, options: dict[str, Any]
) -> None:
    local = await host.caller(local=True).outcome(_ask(session_id), **options)
    wire = await host.caller(local=False).outcome(_ask(session_id), **options)
    assert isinstance(local, tuple), local
    assert isinstance(wire, tuple), wire
    assert local[0] == wire[0], (local, wire)
    if session_id == "missing":
        assert local == (grpc.StatusCode.NOT_FOUND, "session missing does not exist") == wire
    if session_id == "broken":
        # A bug is INTERNAL with a reference to the log line, never its trace.
        assert local[0] == grpc.StatusCode.INTERNAL
        assert local[1].startswith("internal error (ref ")
    if session_id == "huge":
        assert local[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    if session_id == "slow":
        assert local[0] == grpc.StatusCode.DEADLINE_EXCEEDED
        # The deadline ended the callee's work too, as a cancelled RPC does.
        await asyncio.wait_for(host.probe.cancelled.wait(), 5)


async def test_a_request_over_the_cap_is_refused_before_it_is_handled(host: Host) -> None:
    request = _ask("s1")
    request.scope.project_id = "p" * (2 * CAP)
    local = await host.caller(local=True).outcome(request)
    wire = await host.caller(local=False).outcome(request)
    assert local[0] == wire[0] == grpc.StatusCode.RESOURCE_EXHAUSTED, (local, wire)
    assert host.probe.tasks == []


async def test_an_internal_service_still_wants_the_service_credential(host: Host) -> None:
    local = await host.caller(local=True, secret=None).outcome(_ask("s1"))
    wire = await host.caller(local=False, secret=None).outcome(_ask("s1"))
    expected = (
        grpc.StatusCode.UNAUTHENTICATED,
        "SessionsService is internal: calls need the service credential",
    )
    assert local == wire == expected
    wrong = await host.caller(local=True, secret="not-the-secret").outcome(_ask("s1"))
    assert wrong == expected
    assert host.probe.tasks == []


async def test_streams_go_over_the_wire(host: Host) -> None:
    caller = host.caller(local=True)
    call = caller.stub.WatchWork(spb.WatchWorkRequest(), metadata=caller.metadata)
    first = await call.read()
    call.cancel()
    assert isinstance(first, spb.WatchWorkResponse), first
    assert first.account_id == "a1"
    (task,) = host.probe.tasks
    assert task is not asyncio.current_task()


async def test_once_the_server_stops_a_local_call_is_refused_as_the_wire_refuses_it(
    host: Host,
) -> None:
    caller = host.caller(local=True)
    assert (await caller.fetch("s1")).session.id == "s1"
    await host.server.stop(0)
    code, _ = await caller.outcome(_ask("s2"), timeout=5)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert len(host.probe.tasks) == 1
