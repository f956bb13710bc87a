"""No-op executors speaking the gateway's ``Connect`` stream directly.

The load generator of every specloom figure. Each :class:`NoopExecutor` is
one executor stream: it registers, heartbeats, and answers every assignment
at once with an OK result, timestamping the assignment first (that
timestamp is the step start of :mod:`bench.measure`). Speaking the proto
rather than running ``specloom agent`` processes keeps the executor's own
cost near zero, the way a DBOS or LangGraph no-op step body costs nothing,
and lets one process hold a thousand streams for the idle-executor run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc

from bench.measure import StepLog, now
from specloom.rpc import metadata as md
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub

Listener = Callable[[gpb.CommandAssignment, float], None]
"""Called for every assignment with its arrival time (fan-out and push runs)."""


@dataclass
class NoopExecutor:
    """One executor stream answering no-op commands."""

    channel: grpc.aio.Channel
    token: str
    name: str
    log: StepLog
    max_parallel: int = 1
    listener: Listener | None = None
    answer: bool = True
    """False: hold assignments until :meth:`report` is called (the growth run
    paces sessions itself); held leases are listed in heartbeats, as a real
    executor lists the commands it is running."""
    delay: float = 0.0
    """Seconds each command "runs" before its OK result is sent (the
    dependency fan-out run: steps of fixed length on a fixed number of slots)."""
    held: dict[str, gpb.CommandAssignment] = field(default_factory=dict)
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)
    assignments: int = 0
    refused: int = 0
    _outbox: asyncio.Queue[gpb.ConnectRequest | None] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Open the stream (returns at once; await :attr:`welcomed`)."""
        self._task = asyncio.create_task(self._run(), name=f"executor-{self.name}")

    async def stop(self) -> None:
        """Close the stream."""
        self._outbox.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task

    async def _requests(self) -> AsyncIterator[gpb.ConnectRequest]:
        yield gpb.ConnectRequest(
            register=gpb.Register(
                name=self.name,
                capabilities=[],
                max_parallel=self.max_parallel,
                agent_version="bench",
            )
        )
        while True:
            message = await self._outbox.get()
            if message is None:
                return
            yield message

    async def _heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            running = [
                spb.LeaseRef(interaction_id=a.interaction.id, epoch=a.interaction.lease.epoch)
                for a in self.held.values()
            ]
            self._outbox.put_nowait(gpb.ConnectRequest(heartbeat=gpb.Heartbeat(running=running)))

    async def _run(self) -> None:
        stub = GatewayServiceStub(self.channel)
        call = stub.Connect(
            self._requests(), metadata=((md.AUTHORIZATION, f"Bearer {self.token}"),)
        )
        beats: asyncio.Task[None] | None = None
        try:
            async for response in call:
                kind = response.WhichOneof("message")
                if kind == "assignment":
                    self._on_assignment(response.assignment)
                elif kind == "welcome":
                    interval = max(1, response.welcome.heartbeat_interval_seconds or 10)
                    beats = asyncio.create_task(self._heartbeats(interval))
                    self.welcomed.set()
                elif kind == "ack" and not response.ack.accepted:
                    self.refused += 1
        finally:
            if beats is not None:
                beats.cancel()

    def _on_assignment(self, assignment: gpb.CommandAssignment) -> None:
        arrived = now()
        self.assignments += 1
        session_id = assignment.session.id or assignment.interaction.id
        self.log.mark(session_id, arrived)
        if self.listener is not None:
            self.listener(assignment, arrived)
        if not self.answer or self.delay > 0:
            self.held[assignment.interaction.id] = assignment
        if not self.answer:
            return
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self.report, assignment)
            return
        self.report(assignment)

    def report(self, assignment: gpb.CommandAssignment) -> None:
        """Send an OK result for ``assignment`` (at once, or later for a held one)."""
        self.held.pop(assignment.interaction.id, None)
        session_id = assignment.session.id or assignment.interaction.id
        interaction = assignment.interaction
        self._outbox.put_nowait(
            gpb.ConnectRequest(
                result=gpb.CommandResult(
                    session_id=session_id,
                    interaction_id=interaction.id,
                    lease_epoch=interaction.lease.epoch,
                    result=pb.Result(status=pb.RESULT_STATUS_OK),
                )
            )
        )


@dataclass
class Fleet:
    """Many executor streams over a few shared channels."""

    address: str
    token: str
    log: StepLog = field(default_factory=StepLog)
    executors: list[NoopExecutor] = field(default_factory=list)
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    async def connect(
        self,
        count: int,
        max_parallel: int,
        *,
        listener: Listener | None = None,
        answer: bool = True,
        delay: float = 0.0,
        streams_per_channel: int = 100,
        limit_s: float = 60.0,
    ) -> None:
        """Open ``count`` streams and wait until every one is welcomed."""
        # One HTTP/2 connection carries at most ~100 concurrent streams by
        # default; spread streams over enough channels that none queues.
        needed = max(1, -(-count // streams_per_channel))
        while len(self.channels) < needed:
            options = [("grpc.use_local_subchannel_pool", 1)]
            self.channels.append(grpc.aio.insecure_channel(self.address, options=options))
        first = len(self.executors)
        for i in range(first, first + count):
            executor = NoopExecutor(
                channel=self.channels[i % len(self.channels)],
                token=self.token,
                name=f"bench-{i}",
                log=self.log,
                max_parallel=max_parallel,
                listener=listener,
                answer=answer,
                delay=delay,
            )
            executor.start()
            self.executors.append(executor)
        waits = [e.welcomed.wait() for e in self.executors[first:]]
        await asyncio.wait_for(asyncio.gather(*waits), limit_s)

    async def close(self) -> None:
        """Close every stream and channel."""
        await asyncio.gather(*(e.stop() for e in self.executors), return_exceptions=True)
        for channel in self.channels:
            await channel.close()
        self.executors.clear()
        self.channels.clear()
