"""An executor that moves to another gateway replica mid-command keeps its lease and output."""

from __future__ import annotations

import asyncio
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
