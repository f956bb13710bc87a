"""An executor stream driven by hand: the test decides what it says and when.

:class:`HandExecutor` speaks ``GatewayService.Connect`` directly, so a test can
play every way an executor can misbehave: go silent, vanish, say things
twice, report someone else's work, come back under another name. It sends
nothing on its own unless ``heartbeats`` is on (then it lists the leases it
says it holds, as a real agent does), and keeps everything the gateway sent.
:meth:`honest` turns it into a well-behaved executor that answers every
assignment with OK at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc

from specloom.rpc import metadata as md
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub


def result_for(assignment: gpb.CommandAssignment, text: str) -> gpb.ConnectRequest:
    """An OK result for ``assignment`` with ``text`` as its stdout."""
    return gpb.ConnectRequest(
        result=gpb.CommandResult(
            session_id=assignment.session.id,
            interaction_id=assignment.interaction.id,
            lease_epoch=assignment.interaction.lease.epoch,
            result=pb.Result(status=pb.RESULT_STATUS_OK, stdout=text),
        )
    )


@dataclass
class HandExecutor:
    """One ``Connect`` stream under the test's control."""

    address: str
    token: str
    name: str
    running: Sequence[spb.LeaseRef] = ()
    """Leases claimed at registration (what a reconnecting agent sends)."""
    heartbeats: bool = False
    auto_answer: bool = False
    received: list[gpb.ConnectResponse] = field(default_factory=list)
    held: dict[str, gpb.CommandAssignment] = field(default_factory=dict)
    """Assignments received and not yet answered (listed in heartbeats)."""
    ended: grpc.StatusCode | None = None
    """How the gateway ended the stream, once it did."""
    _unread: list[gpb.ConnectResponse] = field(default_factory=list)
    """Messages no :meth:`next` has taken yet, in arrival order."""
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _outbox: asyncio.Queue[gpb.ConnectRequest | None] = field(default_factory=asyncio.Queue)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _channel: grpc.aio.Channel | None = None
    _call: grpc.aio.StreamStreamCall[gpb.ConnectRequest, gpb.ConnectResponse] | None = None

    async def connect(self) -> gpb.Welcome:
        """Open the stream, register, and return the welcome."""
        self._channel = grpc.aio.insecure_channel(self.address)
        register = gpb.Register(
            name=self.name, capabilities=["shell", "git"], max_parallel=4, running=self.running
        )
        self._outbox.put_nowait(gpb.ConnectRequest(register=register))
        stub = GatewayServiceStub(self._channel)
        self._call = stub.Connect(
            self._requests(), metadata=((md.AUTHORIZATION, f"Bearer {self.token}"),)
        )
        self._tasks.append(asyncio.create_task(self._read()))
        welcome = (await self.next("welcome")).welcome
        if self.heartbeats:
            interval = max(1, welcome.heartbeat_interval_seconds)
            self._tasks.append(asyncio.create_task(self._beat(interval)))
        return welcome

    def honest(self) -> HandExecutor:
        """Answer every assignment with OK (``stdout`` names this executor) and heartbeat."""
        self.auto_answer = True
        self.heartbeats = True
        return self

    async def _requests(self) -> AsyncIterator[gpb.ConnectRequest]:
        while (message := await self._outbox.get()) is not None:
            yield message

    async def _read(self) -> None:
        assert self._call is not None
        try:
            async for response in self._call:
                self.received.append(response)
                if response.WhichOneof("message") == "assignment":
                    assignment = response.assignment
                    self.held[assignment.interaction.id] = assignment
                    if self.auto_answer:
                        self.answer(assignment, f"by {self.name}")
                self._unread.append(response)
                self._arrived.set()
            self.ended = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            self.ended = exc.code()

    async def _beat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            leases = [
                spb.LeaseRef(interaction_id=a.interaction.id, epoch=a.interaction.lease.epoch)
                for a in self.held.values()
            ]
            self.send(gpb.ConnectRequest(heartbeat=gpb.Heartbeat(running=leases)))

    def send(self, message: gpb.ConnectRequest) -> None:
        """Queue a message to the gateway."""
        self._outbox.put_nowait(message)

    def answer(self, assignment: gpb.CommandAssignment, text: str) -> None:
        """Report an OK result for ``assignment``."""
        self.held.pop(assignment.interaction.id, None)
        self.send(result_for(assignment, text))

    async def next(self, kind: str, within: float = 20.0) -> gpb.ConnectResponse:
        """The oldest message of ``kind`` no earlier call took.

        Messages of other kinds stay for the calls that ask for them: the
        gateway may push an assignment before the ack a test waits for, and
        that assignment must still be there when the test asks for it.
        """
        async with asyncio.timeout(within):
            while True:
                for index, message in enumerate(self._unread):
                    if message.WhichOneof("message") == kind:
                        return self._unread.pop(index)
                self._arrived.clear()
                await self._arrived.wait()

    def assignments(self) -> list[gpb.CommandAssignment]:
        """Every CommandAssignment received so far."""
        return [m.assignment for m in self.received if m.WhichOneof("message") == "assignment"]

    def acks(self) -> list[gpb.ResultAck]:
        """Every ResultAck received so far."""
        return [m.ack for m in self.received if m.WhichOneof("message") == "ack"]

    def cancels(self) -> list[gpb.CancelCommand]:
        """Every CancelCommand received so far."""
        return [m.cancel for m in self.received if m.WhichOneof("message") == "cancel"]

    def go_silent(self) -> None:
        """Stop heartbeating; the stream stays open (a hung process)."""
        for task in self._tasks[1:]:
            task.cancel()
        self.heartbeats = False

    async def vanish(self) -> None:
        """Drop the connection without a word (a crashed process)."""
        if self._call is not None:
            self._call.cancel()
        await self.close()

    async def close(self) -> None:
        """Half-close, stop, and close the channel."""
        self._outbox.put_nowait(None)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await task
        if self._channel is not None:
            await self._channel.close(None)
