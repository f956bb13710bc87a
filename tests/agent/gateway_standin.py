"""A stand-in for the gateway's executor stream (``GatewayService.Connect``), for tests.

It implements only ``Connect``, on a real ``grpc.aio`` server on loopback,
and lets a test play the gateway's part by hand: read what the executor
sent, send welcomes, assignments, acks and cancels, and drop the stream.
It decides nothing (no leases, no dispatch); the real gateway lives in
``specloom_gateway`` and gets its own end-to-end tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from specloom.rpc import metadata as md
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import gateway_pb2_grpc


@dataclass
class Stream:
    """One executor connection as the stand-in sees it."""

    metadata: dict[str, str]
    inbox: asyncio.Queue[gpb.ConnectRequest] = field(default_factory=asyncio.Queue)
    outbox: asyncio.Queue[gpb.ConnectResponse | None] = field(default_factory=asyncio.Queue)
    drop_with: grpc.StatusCode | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def expect(self, kind: str, timeout: float = 10.0) -> Any:
        """The next message of ``kind`` from the executor (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.inbox.get()
                if message.WhichOneof("message") == kind:
                    return getattr(message, kind)

    def send(self, response: gpb.ConnectResponse) -> None:
        """Queue a message to the executor."""
        self.outbox.put_nowait(response)

    def drop(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        """End the stream with an error, as a gateway restart would."""
        self.drop_with = code
        self.outbox.put_nowait(None)


class GatewayStandin(gateway_pb2_grpc.GatewayServiceServicer):
    """Connect only; every other RPC is unimplemented."""

    def __init__(self, token: str, welcome: gpb.Welcome) -> None:
        self.token = token
        self.welcome = welcome
        self.streams: asyncio.Queue[Stream] = asyncio.Queue()

    async def next_stream(self, timeout: float = 10.0) -> Stream:
        """The next executor connection."""
        return await asyncio.wait_for(self.streams.get(), timeout)

    async def Connect(
        self,
        request_iterator: AsyncIterator[gpb.ConnectRequest],
        context: grpc.aio.ServicerContext[gpb.ConnectRequest, gpb.ConnectResponse],
    ) -> AsyncIterator[gpb.ConnectResponse]:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        if md.bearer_token(context.invocation_metadata()) != self.token:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        stream = Stream(metadata=metadata)
        first = await anext(aiter(request_iterator))
        stream.inbox.put_nowait(first)
        self.streams.put_nowait(stream)

        async def pump() -> None:
            async for message in request_iterator:
                stream.inbox.put_nowait(message)

        reader = asyncio.create_task(pump())
        try:
            yield gpb.ConnectResponse(welcome=self.welcome)
            while (response := await stream.outbox.get()) is not None:
                yield response
            if stream.drop_with is not None:
                await context.abort(stream.drop_with, "stand-in dropped the stream")
        finally:
            reader.cancel()
            stream.ended.set()


async def start_standin(
    token: str,
    welcome: gpb.Welcome,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, GatewayStandin, int]:
    """Serve the stand-in on 127.0.0.1 (an ephemeral port)."""
    server = grpc.aio.server()
    standin = GatewayStandin(token, welcome)  # type: ignore[abstract]  # Connect only
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(standin, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, standin, port
