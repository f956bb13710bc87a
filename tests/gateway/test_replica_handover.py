"""An executor that moves to another gateway replica mid-command keeps its lease and output.

Whatever order the old stream's end and the new stream's registration reach
the two replicas in, the lease stays with the executor, its result is
accepted, and no other executor is handed the command: the new replica
adopts the lease before it welcomes the stream; the old replica's late
heartbeats and its teardown's release name the expiry they last saw and so
leave an adoption alone; and a lease the old replica released first is
taken back by the adoption as long as nobody claimed it meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import grpc

from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub
from tests.gateway.conftest import Stack, bearer, host_gateway


class RawExecutor:
    """A bare Connect stream (no agent): the test says exactly what is sent."""

    def __init__(self, address: str, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.outbox: asyncio.Queue[gpb.ConnectRequest | None] = asyncio.Queue()
        self.inbox: asyncio.Queue[gpb.ConnectResponse] = asyncio.Queue()

        async def requests() -> AsyncIterator[gpb.ConnectRequest]:
            while (message := await self.outbox.get()) is not None:
                yield message

        self.call = GatewayServiceStub(self.channel).Connect(requests(), metadata=bearer(token))
        self.reader = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        async for message in self.call:
            await self.inbox.put(message)

    async def next_of(self, kind: str) -> gpb.ConnectResponse:
        while True:
            message = await asyncio.wait_for(self.inbox.get(), 15)
            if message.WhichOneof("message") == kind:
                return message

    async def close(self) -> None:
        await self.outbox.put(None)
        self.call.cancel()
        self.reader.cancel()
        await self.channel.close(None)


def _register(lease: spb.LeaseRef | None = None) -> gpb.ConnectRequest:
    return gpb.ConnectRequest(
        register=gpb.Register(
            name="mover",
            capabilities=["shell"],
            max_parallel=1,
            running=[lease] if lease is not None else [],
        )
    )


def _result(session_id: str, lease: spb.LeaseRef) -> gpb.ConnectRequest:
    return gpb.ConnectRequest(
        result=gpb.CommandResult(
            session_id=session_id,
            interaction_id=lease.interaction_id,
            lease_epoch=lease.epoch,
            result=pb.Result(status=pb.RESULT_STATUS_OK),
        )
    )


async def _lease_live(stack: Stack, session_id: str) -> bool:
    """Whether the session's pending command is under a live lease (a release expires it)."""
    fetched = await stack.sessions.stub.FetchSession(
        spb.FetchSessionRequest(
            scope=pb.Scope(account_id="acme", project_id="alpha", user_id="alice"),
            session_id=session_id,
            view=pb.INTERACTION_VIEW_LAST,
        ),
        metadata=stack.sessions.metadata,
    )
    lease = fetched.session.interactions[-1].lease
    return bool(lease.executor_id) and lease.expires_at.ToDatetime(dt.UTC) > dt.datetime.now(dt.UTC)


async def test_a_release_that_reaches_sessions_first_is_taken_back_by_the_adoption(
    stack: Stack,
) -> None:
    token = await stack.token()
    second = await host_gateway(stack.sessions, stack.orchestrators)
    client = stack.client(token)
    first = RawExecutor(stack.address, token)
    moved: RawExecutor | None = None
    try:
        await first.outbox.put(_register())
        await first.next_of("welcome")
        started = await client.start_session("Build", {}, mode="agentic")
        interaction = (await first.next_of("assignment")).assignment.interaction
        lease = spb.LeaseRef(interaction_id=interaction.id, epoch=interaction.lease.epoch)
        # The old stream ends first and its teardown releases the lease...
        await first.close()
        deadline = asyncio.get_running_loop().time() + 15
        while await _lease_live(stack, started.session.id):
            assert asyncio.get_running_loop().time() < deadline, "the lease was never released"
            await asyncio.sleep(0.05)
        # ...then the executor, still running the command, registers elsewhere.
        moved = RawExecutor(second.address, token)
        await moved.outbox.put(_register(lease))
        await moved.next_of("welcome")
        assert await _lease_live(stack, started.session.id)
        await moved.outbox.put(_result(started.session.id, lease))
        ack = (await moved.next_of("ack")).ack
        assert ack.accepted, ack.message
        session = await client.get_session(started.session.id)
        assert session.interactions[0].status == pb.INTERACTION_STATUS_COMPLETED
    finally:
        if moved is not None:
            await moved.close()
        await first.close()
        await second.stop(0.5)


async def test_late_heartbeats_of_the_old_stream_leave_the_adoption_alone(stack: Stack) -> None:
    token = await stack.token()
    second = await host_gateway(stack.sessions, stack.orchestrators)
    client = stack.client(token)
    first = RawExecutor(stack.address, token)
    moved: RawExecutor | None = None
    try:
        await first.outbox.put(_register())
        await first.next_of("welcome")
        started = await client.start_session("Build", {}, mode="agentic")
        interaction = (await first.next_of("assignment")).assignment.interaction
        lease = spb.LeaseRef(interaction_id=interaction.id, epoch=interaction.lease.epoch)
        moved = RawExecutor(second.address, token)
        await moved.outbox.put(_register(lease))
        await moved.next_of("welcome")
        # A heartbeat the executor sent on its old stream before it moved,
        # processed by the old replica after the adoption: not renewed there.
        await first.outbox.put(gpb.ConnectRequest(heartbeat=gpb.Heartbeat(running=[lease])))
        cancel = (await first.next_of("cancel")).cancel
        assert cancel.interaction_id == interaction.id
        await first.close()
        await moved.outbox.put(_result(started.session.id, lease))
        ack = (await moved.next_of("ack")).ack
        assert ack.accepted, ack.message
    finally:
        if moved is not None:
            await moved.close()
        await first.close()
        await second.stop(0.5)


async def test_output_and_result_through_a_second_replica_after_a_move(stack: Stack) -> None:
    token = await stack.token()
    second = await host_gateway(stack.sessions, stack.orchestrators)
    client = stack.client(token)
    first = RawExecutor(stack.address, token)
    moved: RawExecutor | None = None
    try:
        await first.outbox.put(
            gpb.ConnectRequest(
                register=gpb.Register(name="mover", capabilities=["shell"], max_parallel=1)
            )
        )
        await first.next_of("welcome")
        started = await client.start_session("Build", {}, mode="agentic")
        assignment = (await first.next_of("assignment")).assignment
        interaction = assignment.interaction
        lease = spb.LeaseRef(interaction_id=interaction.id, epoch=interaction.lease.epoch)
        # The executor's network moves: it dials the other replica, naming
        # the command it is still running.
        moved = RawExecutor(second.address, token)
        await moved.outbox.put(
            gpb.ConnectRequest(
                register=gpb.Register(
                    name="mover", capabilities=["shell"], max_parallel=1, running=[lease]
                )
            )
        )
        await moved.next_of("welcome")
        await first.close()
        await moved.outbox.put(
            gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=started.session.id,
                    interaction_id=interaction.id,
                    lease_epoch=lease.epoch,
                    stream=pb.OUTPUT_STREAM_STDOUT,
                    data=b"compiled after the move\n",
                )
            )
        )
        await moved.outbox.put(
            gpb.ConnectRequest(
                result=gpb.CommandResult(
                    session_id=started.session.id,
                    interaction_id=interaction.id,
                    lease_epoch=lease.epoch,
                    result=pb.Result(status=pb.RESULT_STATUS_OK),
                )
            )
        )
        ack = (await moved.next_of("ack")).ack
        assert ack.accepted, ack.message
        chunks, _ = await client.read_output(started.session.id, interaction.id)
        assert b"".join(c.data for c in chunks) == b"compiled after the move\n"
        session = await client.get_session(started.session.id)
        assert session.interactions[0].status == pb.INTERACTION_STATUS_COMPLETED
        assert session.interactions[0].lease.epoch == 0  # completed: no lease shown
    finally:
        if moved is not None:
            await moved.close()
        await first.close()
        await second.stop(0.5)
