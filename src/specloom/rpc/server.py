"""Server bootstrap: one ``grpc.aio`` server with health, reflection and the interceptor.

Every service process (and the all-in-one ``specloom up``) builds its server
here, so options, limits, TLS and graceful stop are the same everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from specloom.rpc.interceptor import ServiceInterceptor
from specloom.rpc.local import LocalRoutes
from specloom.rpc.reflection import enable_reflection

log = logging.getLogger("specloom.rpc.server")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message accepted or sent. Payload caps inside the services are
smaller and answer RESOURCE_EXHAUSTED with a message naming the field."""

BATCH_BYTES = MAX_MESSAGE_BYTES // 4
"""Requests one batch call carries, in bytes (a request larger than this goes
alone). A batch is one message each way, and its answer echoes every item
with the session head around it, so the budget leaves most of the cap to
the answer."""

TRANSPORT_CEILING = 4
"""The transport takes messages up to this many times the cap, so a message
over the cap is read whole and refused by the interceptor. Refused by the
transport instead, it would be cut off mid-send: the sender's library then
fails its own write and reports INTERNAL ("Failed execute_batch") before the
server's RESOURCE_EXHAUSTED reaches it. Past the ceiling the transport
still refuses, and what the sender sees is up to its library."""

KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    # Executor streams live for hours behind NATs and load balancers that
    # drop idle connections; pings keep them open and detect dead peers.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate and key (PEM files)."""

    cert_file: Path
    """Certificate chain presented to clients."""
    key_file: Path
    """Private key of the certificate."""

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials from the files."""
        return grpc.ssl_server_credentials(
            [(self.key_file.read_bytes(), self.cert_file.read_bytes())]
        )


class GrpcServer:
    """A ``grpc.aio`` server with health checking, reflection (v1 and v1alpha) and graceful stop."""

    def __init__(
        self,
        listen: str,
        *,
        internal_secret: str | None = None,
        tls: TlsFiles | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        extra_interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
        tracing: bool = False,
    ) -> None:
        self.listen = listen
        self._tls = tls
        interceptors: list[grpc.aio.ServerInterceptor] = [
            ServiceInterceptor(
                internal_secret, tracing=tracing, max_message_bytes=max_message_bytes
            ),
            *extra_interceptors,
        ]
        self.local = LocalRoutes(interceptors, max_message_bytes)
        """This server's unary handlers, for calls from its own process (``specloom up``)."""
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", TRANSPORT_CEILING * max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.so_reuseport", 0),
                *KEEPALIVE_OPTIONS,
            ],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._services: list[str] = []
        self._on_stop: list[Callable[[], None]] = []
        self.port = 0

    def add(self, service_name: str, register: Callable[[grpc.aio.Server], None]) -> None:
        """Register a servicer; ``service_name`` is its full proto name."""
        register(_Recording(self.server, self.local))  # type: ignore[arg-type]
        self._services.append(service_name)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a graceful stop begins, before calls drain.

        Services holding long-lived streams (the gateway's executor streams)
        use it to stop handing out work and end their streams within the grace.
        """
        self._on_stop.append(callback)

    @property
    def services(self) -> list[str]:
        """Full names of the services registered so far."""
        return list(self._services)

    def bind(self) -> int:
        """Bind the listen address now (before services are added); returns the port.

        The all-in-one mode binds first so services created afterwards can
        be told the real port when the configured one is 0.
        """
        if self.port:
            return self.port
        if self._tls is not None:
            self.port = self.server.add_secure_port(self.listen, self._tls.credentials())
        else:
            self.port = self.server.add_insecure_port(self.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen}: address in use or not valid")
        return self.port

    async def start(self) -> int:
        """Start serving and mark every service SERVING; returns the bound port."""
        enable_reflection([*self._services, health.SERVICE_NAME], self.server)
        self.bind()
        await self.server.start()
        for name in ["", *self._services]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("listening on %s (port %d): %s", self.listen, self.port, ", ".join(self._services))
        return self.port

    async def stop(self, grace: float = 10.0) -> None:
        """Report NOT_SERVING, then stop, letting calls and streams finish within ``grace``."""
        # Readiness probes see NOT_SERVING first, so load balancers stop
        # sending new calls before the listener goes away.
        await self.health.enter_graceful_shutdown()
        for callback in self._on_stop:
            callback()
        # From here the server takes no new call (grpc's rule), local or not.
        self.local.close()
        await self.server.stop(grace)

    async def wait(self) -> None:
        """Wait until the server stops."""
        await self.server.wait_for_termination()


class _Recording:
    """The server as a generated ``add_*_to_server`` sees it, noting each handler."""

    def __init__(self, server: grpc.aio.Server, local: LocalRoutes) -> None:
        self._server = server
        self._local = local

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self._local.record(service, handlers)
        self._server.add_registered_method_handlers(service, handlers)


def stop_signals() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (for graceful drain)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event
