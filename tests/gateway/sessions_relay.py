"""A gRPC relay in front of Sessions that can hold chosen calls (ordering on demand).

Every SessionsService call is passed on as bytes to the real Sessions; a test
can ask that calls to one method matching a predicate wait until it lets
them go, and can see which calls completed. That is how a test puts one
call "in flight" while another overtakes it, without sleeping and hoping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pool


def _identity(data: bytes) -> bytes:
    return data


def _passed_on(
    context: grpc.aio.ServicerContext[bytes, bytes],
) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's own metadata (not the transport's pseudo-headers)."""
    return tuple(
        (key, value)
        for key, value in context.invocation_metadata() or ()
        if not key.startswith((":", "grpc-")) and key != "user-agent"
    )


@dataclass
class _Hold:
    method: str
    match: Callable[[bytes], bool]
    held: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


class _Forwarding(grpc.GenericRpcHandler):
    """Any method of any service behind the Sessions address (tokens, executors, …)."""

    def __init__(self, relay: SessionsRelay) -> None:
        self._relay = relay

    def service(
        self, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        path: str = details.method
        service, name = path.strip("/").split("/", 1)
        method = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
        if method.server_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._relay._streaming(path), _identity, _identity
            )
        return grpc.unary_unary_rpc_method_handler(
            self._relay._unary(name, path), _identity, _identity
        )


class SessionsRelay:
    """Serves what the Sessions address serves on a loopback port, forwarded to ``target``."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._server = grpc.aio.server()
        self._holds: list[_Hold] = []
        self.completed: list[tuple[str, bytes]] = []
        """(method, request bytes) of every unary call Sessions answered, in order."""
        self._done = asyncio.Condition()
        self.port = 0

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> str:
        self._server.add_generic_rpc_handlers((_Forwarding(self),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self.address

    def hold(self, method: str, match: Callable[[bytes], bool]) -> _Hold:
        """Make calls to ``method`` whose request ``match``\\ es wait for :meth:`release`."""
        hold = _Hold(method, match)
        self._holds.append(hold)
        return hold

    def release(self, hold: _Hold) -> None:
        """Let every call ``hold`` keeps (and any later one) through."""
        hold.released.set()

    async def completion(self, method: str, within: float) -> bool:
        """Wait until a ``method`` call completes; False if none did within ``within`` s."""
        try:
            async with asyncio.timeout(within), self._done:
                await self._done.wait_for(lambda: any(m == method for m, _ in self.completed))
        except TimeoutError:
            return False
        return True

    def _unary(self, name: str, path: str) -> Callable[[bytes, Any], Any]:
        call = self._channel.unary_unary(path, _identity, _identity)

        async def forward(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            for hold in self._holds:
                if hold.method == name and not hold.released.is_set() and hold.match(request):
                    hold.held += 1
                    hold.arrived.set()
                    await hold.released.wait()
            try:
                response: bytes = await call(request, metadata=_passed_on(context))
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            async with self._done:
                self.completed.append((name, request))
                self._done.notify_all()
            return response

        return forward

    def _streaming(self, path: str) -> Callable[[bytes, Any], AsyncIterator[bytes]]:
        call = self._channel.unary_stream(path, _identity, _identity)

        async def forward(
            request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
        ) -> AsyncIterator[bytes]:
            stream = call(request, metadata=_passed_on(context))
            try:
                async for item in stream:
                    yield item
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            finally:
                stream.cancel()

        return forward

    async def stop(self) -> None:
        await self._server.stop(None)
        await self._channel.close(None)
