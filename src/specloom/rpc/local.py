"""Unary calls between services hosted in one process, without the network.

``specloom up`` hosts every service on one server, and they call each other
through it: a step is the gateway calling the orchestrator, which calls
Sessions. Over loopback gRPC each of those calls pays for HTTP/2 framing,
two trips through the event loop and grpc's own machinery on both ends —
in one interpreter, with one GIL, that was a large share of a step.

A :class:`LocalChannel` answers a unary call to a method this process serves
by running the server's own handler, wrapped by the server's own
interceptors, in the calling task. It keeps the contract the wire keeps:
the request is serialized and parsed again (so caller and callee never
share a message), both directions are held to the message caps, the
callee sees the caller's metadata (the service credential is checked as
on the wire), a deadline ends the call with DEADLINE_EXCEEDED, and a
refusal arrives as the same :class:`grpc.aio.AioRpcError` with the same
code and details. Streams, methods served elsewhere, and every call once
the server has begun to stop go over the real channel.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

import grpc

Metadata = Sequence[tuple[str, str | bytes]]


class _Details(NamedTuple):
    method: str
    invocation_metadata: Metadata


class _CallDetails(_Details, grpc.HandlerCallDetails):  # type: ignore[misc]
    """What a server interceptor is told about a call (grpc's own shape)."""


class LocalRoutes:
    """The unary handlers one server registered, for calls from its own process."""

    def __init__(
        self, interceptors: Sequence[grpc.aio.ServerInterceptor], max_message_bytes: int
    ) -> None:
        self._interceptors = list(interceptors)
        self.max_message_bytes = max_message_bytes
        """The channels' cap in both directions (the server's is the same)."""
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._wrapped: dict[str, Any] = {}
        self.open = True
        """False once the server began to stop: it takes no new calls then."""

    def record(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        """Note ``service``'s method handlers (as registered on the server)."""
        for name, handler in handlers.items():
            if handler.unary_unary is not None:
                self._handlers[f"/{service}/{name}"] = handler

    def serves(self, method: str) -> bool:
        """Whether a call to ``method`` can be answered here now."""
        return self.open and method in self._handlers

    async def handler(self, method: str) -> Any:
        """``method``'s handler as the server runs it: inside its interceptors."""
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            raw = self._handlers[method]

            async def innermost(_: grpc.HandlerCallDetails) -> Any:
                return raw

            continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]] = innermost
            for interceptor in reversed(self._interceptors):
                continuation = functools.partial(interceptor.intercept_service, continuation)
            # The interceptors read only the method from the details (the
            # metadata they check comes from the context), so the wrapped
            # handler is the same for every call of a method.
            wrapped = await continuation(_CallDetails(method, ()))
            self._wrapped[method] = wrapped
        return wrapped

    def close(self) -> None:
        """The server is stopping: new calls go to the wire, which refuses them."""
        self.open = False


class _Context:
    """What a handler's context offers, for a call from this process."""

    def __init__(self, metadata: Metadata | None) -> None:
        self._metadata = tuple(metadata or ())
        self.code = grpc.StatusCode.OK
        self.details = ""

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> None:
        self.code, self.details = code, details
        raise grpc.aio.AbortError

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class _UnaryUnary:
    """One method's callable, as a stub holds it: local when it can be, else the wire."""

    def __init__(
        self,
        method: str,
        serialize: Callable[[Any], bytes],
        deserialize: Callable[[bytes], Any],
        wire: grpc.aio.UnaryUnaryMultiCallable[Any, Any],
        routes: LocalRoutes,
    ) -> None:
        self._method = method
        self._serialize = serialize
        self._deserialize = deserialize
        self._wire = wire
        self._routes = routes

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **options: Any,
    ) -> Awaitable[Any]:
        if not self._routes.serves(self._method):
            return self._wire(request, timeout=timeout, metadata=metadata, **options)
        return self._local(request, deadline=timeout, metadata=metadata)

    async def _local(
        self, request: Any, *, deadline: float | None, metadata: Metadata | None
    ) -> Any:
        cap = self._routes.max_message_bytes
        data = self._serialize(request)
        if len(data) > cap:
            # What the channel itself answers for a request over its cap.
            raise _error(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Sent message larger than max ({len(data)} vs. {cap})",
            )
        handler = await self._routes.handler(self._method)
        context = _Context(metadata)
        try:
            async with asyncio.timeout(deadline):
                response = await handler.unary_unary(handler.request_deserializer(data), context)
        except grpc.aio.AbortError:
            raise _error(context.code, context.details) from None
        except TimeoutError:
            raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        answer = handler.response_serializer(response)
        if len(answer) > cap:
            raise _error(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Received message larger than max ({len(answer)} vs. {cap})",
            )
        return self._deserialize(answer)


class LocalChannel:
    """A channel whose unary calls to methods served in this process stay in it.

    Everything else is the real channel's (streams, ``close``, readiness).
    """

    def __init__(self, wire: grpc.aio.Channel, routes: LocalRoutes) -> None:
        self._wire = wire
        self._routes = routes

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> Any:
        wire = self._wire.unary_unary(
            method,
            request_serializer=request_serializer,
            response_deserializer=response_deserializer,
            _registered_method=_registered_method,  # type: ignore[call-arg]
        )
        if request_serializer is None or response_deserializer is None:
            return wire  # raw bytes in and out: nothing to gain, keep the wire's rules
        return _UnaryUnary(method, request_serializer, response_deserializer, wire, self._routes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wire, name)
