"""Executors speaking ``Connect`` directly, for tests that need hundreds of them.

Each one registers, heartbeats, and reports OK for every assignment at once
(the agent's own behaviour is tested with real agents elsewhere; here only
the gateway's dispatch is under test). Everything the gateway sent is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub
from tests.gateway.conftest import bearer


@dataclass
class RawExecutor:
    """One executor stream that answers every command with OK."""

    channel: grpc.aio.Channel
    token: str
    name: str
    capabilities: tuple[str, ...] = ("shell", "git")
    max_parallel: int = 1
    answer_after: float = 0.0
    """Seconds to "run" each command before reporting."""
    welcome: gpb.Welcome | None = None
    received: list[gpb.ConnectResponse] = field(default_factory=list)
    running: int = 0
    peak: int = 0
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)
    _outbox: asyncio.Queue[gpb.ConnectRequest | None] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._outbox.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task

    def assignments(self) -> list[gpb.CommandAssignment]:
        return [m.assignment for m in self.received if m.WhichOneof("message") == "assignment"]

    async def _requests(self) -> AsyncIterator[gpb.ConnectRequest]:
        yield gpb.ConnectRequest(
            register=gpb.Register(
                name=self.name, capabilities=self.capabilities, max_parallel=self.max_parallel
            )
        )
        while (message := await self._outbox.get()) is not None:
            yield message

    async def _run(self) -> None:
        stub = GatewayServiceStub(self.channel)
        call = stub.Connect(self._requests(), metadata=bearer(self.token))
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for response in call:
                self.received.append(response)
                kind = response.WhichOneof("message")
                if kind == "welcome":
                    self.welcome = response.welcome
                    self.welcomed.set()
                    beat = asyncio.create_task(self._heartbeats(response.welcome))
                    tasks.add(beat)
                elif kind == "assignment":
                    self.running += 1
                    self.peak = max(self.peak, self.running)
                    task = asyncio.create_task(self._answer(response.assignment))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()

    async def _heartbeats(self, welcome: gpb.Welcome) -> None:
        while True:
            await asyncio.sleep(welcome.heartbeat_interval_seconds)
            self._outbox.put_nowait(gpb.ConnectRequest(heartbeat=gpb.Heartbeat()))

    async def _answer(self, assignment: gpb.CommandAssignment) -> None:
        if self.answer_after:
            await asyncio.sleep(self.answer_after)
        self.running -= 1
        interaction = assignment.interaction
        self._outbox.put_nowait(
            gpb.ConnectRequest(
                result=gpb.CommandResult(
                    session_id=assignment.session.id,
                    interaction_id=interaction.id,
                    lease_epoch=interaction.lease.epoch,
                    result=pb.Result(status=pb.RESULT_STATUS_OK, stdout=f"by {self.name}"),
                )
            )
        )


async def connect_many(
    address: str,
    token: str,
    count: int,
    prefix: str,
    *,
    max_parallel: int = 1,
    answer_after: float = 0.0,
) -> tuple[list[RawExecutor], list[grpc.aio.Channel]]:
    """Open ``count`` executor streams (100 per HTTP/2 connection) and wait for each welcome."""
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, -(-count // 100)))
    ]
    executors = [
        RawExecutor(
            channel=channels[i % len(channels)],
            token=token,
            name=f"{prefix}-{i}",
            max_parallel=max_parallel,
            answer_after=answer_after,
        )
        for i in range(count)
    ]
    for executor in executors:
        executor.start()
    await asyncio.wait_for(asyncio.gather(*(e.welcomed.wait() for e in executors)), 60)
    return executors, channels
