"""The one server interceptor every specloom service runs.

It gives every handler the same edges:

* a request whose bytes do not decode is INVALID_ARGUMENT naming the
  message type (grpc's own answer would be INTERNAL, which the contract
  reserves for our bugs); one over the message cap is RESOURCE_EXHAUSTED
  naming its size and the cap (the transport reads it whole, see
  :data:`specloom.rpc.server.TRANSPORT_CEILING`);
* a :class:`~specloom.errors.SpecloomError` becomes its status code and
  message; anything else is logged with a reference and answered INTERNAL
  without details (a stack trace is not an API);
* internal services refuse calls without the internal secret;
* every call is counted and timed by method and code;
* log lines of a unary call carry the ``session_id`` and ``interaction_id``
  of its request (when it has such fields), and each call is logged at
  DEBUG with its code and duration;
* with tracing on, every call but an executor stream is a server span
  continuing the caller's trace (an executor stream lives for hours: the
  gateway gives each result it reports a span of its own instead).

Servicers therefore raise domain errors and never touch status codes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from specloom.errors import InvalidArgument, ResourceExhausted, SpecloomError, Unauthenticated
from specloom.ids import new_id
from specloom.logs import log_context
from specloom.rpc import metadata as md
from specloom.rpc.errors import status_of
from specloom.rpc.metrics import RPC_HANDLED, RPC_LATENCY, split_method
from specloom.rpc.tracing import server_span

log = logging.getLogger("specloom.rpc")


MAX_MESSAGE_BYTES = 1000
"""Longest status message sent, in UTF-8 bytes. Messages quote what the caller
sent (a type, a step name); quoted whole, a 10 KB value would push the
trailers past the client's 8 KB metadata limit, and the caller would get a
transport error instead of ours."""


def bounded(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE_BYTES`, saying how much was left out."""
    data = message.encode()
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    kept = data[:MAX_MESSAGE_BYTES].decode(errors="ignore")
    return f"{kept}… ({len(data) - len(kept.encode())} more bytes)"


class _Malformed:
    """Stands in for a request that cannot be handled: its bytes did not
    decode, or there are more of them than the cap allows."""

    __slots__ = ("_error",)

    def __init__(self, error: SpecloomError) -> None:
        self._error = error

    def error(self) -> SpecloomError:
        return self._error


def _tolerant(
    deserializer: Callable[[bytes], Any] | None, max_bytes: int
) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    # The bound FromString of a generated class: its __self__ is the class.
    owner = getattr(deserializer, "__self__", None)
    type_name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request")

    def decode(data: bytes) -> Any:
        if len(data) > max_bytes:
            return _Malformed(
                ResourceExhausted(
                    f"{type_name} message of {len(data)} bytes is larger than max "
                    f"({max_bytes} bytes)"
                )
            )
        try:
            return deserializer(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            problem = str(exc) or type(exc).__name__
            return _Malformed(
                InvalidArgument(f"request is not a valid {type_name} message: {problem}")
            )

    return decode


def _ids(request: Any) -> tuple[str, str]:
    """The session and interaction a request is about ("" where it has no such field)."""
    return getattr(request, "session_id", ""), getattr(request, "interaction_id", "")


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Malformed):
            raise request.error()
        yield request


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Errors, internal auth and metrics for every handler (see module doc)."""

    def __init__(
        self, internal_secret: str | None, *, tracing: bool = False, max_message_bytes: int
    ) -> None:
        self._secret = internal_secret.encode() if internal_secret else None
        self._tracing = tracing
        self._max_bytes = max_message_bytes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        # grpc's type stubs describe sync handlers; aio behaviours are
        # coroutines and async generators, so the handler is Any here.
        handler: Any = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        service, name = split_method(method)
        needs_secret = self._secret is not None and method.startswith(md.INTERNAL_SERVICES)
        deserialize = _tolerant(handler.request_deserializer, self._max_bytes)
        serialize = handler.response_serializer

        def guard(context: Any) -> None:
            if needs_secret:
                given = md.get(context.invocation_metadata(), md.INTERNAL_SECRET)
                if given is None or not hmac.compare_digest(given.encode(), self._secret or b""):
                    raise Unauthenticated(
                        f"{service} is internal: calls need the service credential"
                    )

        async def fail(context: Any, exc: BaseException) -> None:
            if isinstance(exc, SpecloomError):
                code = status_of(exc)
                RPC_HANDLED.labels(service, name, code.name).inc()
                log.debug("%s %s: %s", method, code.name, exc.message)
                await context.abort(code, bounded(exc.message))
            ref = new_id()
            log.error("unhandled error in %s (ref %s)", method, ref, exc_info=exc)
            RPC_HANDLED.labels(service, name, "INTERNAL").inc()
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref})")

        tracing = self._tracing

        def done(started: float, code: str = "OK") -> None:
            elapsed = time.perf_counter() - started
            RPC_LATENCY.labels(service, name).observe(elapsed)
            RPC_HANDLED.labels(service, name, code).inc()
            log.debug("%s %s in %.1f ms", method, code, elapsed * 1000)

        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                with log_context(*_ids(request)):
                    try:
                        guard(context)
                        if isinstance(request, _Malformed):
                            raise request.error()
                        if tracing:
                            with server_span(method, context.invocation_metadata()):
                                response = await inner_uu(request, context)
                        else:
                            response = await inner_uu(request, context)
                    except asyncio.CancelledError:
                        done(started, "CANCELLED")
                        raise
                    except grpc.aio.AbortError:
                        raise
                    except Exception as exc:
                        RPC_LATENCY.labels(service, name).observe(time.perf_counter() - started)
                        await fail(context, exc)
                        raise  # unreachable: abort raises
                    done(started)
                    return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, request_deserializer=deserialize, response_serializer=serialize
            )

        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    guard(context)
                    if isinstance(request, _Malformed):
                        raise request.error()
                    if tracing:
                        with server_span(method, context.invocation_metadata()):
                            async for response in inner_us(request, context):
                                yield response
                    else:
                        async for response in inner_us(request, context):
                            yield response
                except asyncio.CancelledError:
                    done(started, "CANCELLED")
                    raise
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await fail(context, exc)
                    raise
                done(started)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, request_deserializer=deserialize, response_serializer=serialize
            )

        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: Any) -> Any:
                started = time.perf_counter()
                try:
                    guard(context)
                    if tracing:
                        with server_span(method, context.invocation_metadata()):
                            response = await inner_su(_checked(requests), context)
                    else:
                        response = await inner_su(_checked(requests), context)
                except asyncio.CancelledError:
                    done(started, "CANCELLED")
                    raise
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await fail(context, exc)
                    raise
                done(started)
                return response

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, request_deserializer=deserialize, response_serializer=serialize
            )

        inner_ss = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: Any) -> Any:
            started = time.perf_counter()
            try:
                guard(context)
                async for response in inner_ss(_checked(requests), context):
                    yield response
            except asyncio.CancelledError:
                done(started, "CANCELLED")
                raise
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await fail(context, exc)
                raise
            done(started)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, request_deserializer=deserialize, response_serializer=serialize
        )
