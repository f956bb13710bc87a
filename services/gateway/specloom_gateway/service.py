"""The gateway as a :class:`~specloom.host.ServiceSpec` (``specloom serve gateway``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from specloom.host import ServiceContext, ServiceSpec
from specloom.ids import new_id
from specloom.rpc.server import GrpcServer
from specloom.v1 import gateway_pb2_grpc as gpb_grpc
from specloom.v1.sessions_pb2_grpc import SessionsServiceStub
from specloom.v1.tokens_pb2_grpc import TokensServiceStub
from specloom_gateway.auth import Authenticator
from specloom_gateway.config import GatewaySettings
from specloom_gateway.deps import Deps
from specloom_gateway.dispatch import Dispatcher
from specloom_gateway.executors import ExecutorStreams
from specloom_gateway.hub import ExecutorHub
from specloom_gateway.joins import JoinReporter
from specloom_gateway.routing import Router
from specloom_gateway.servicer import GatewayServicer
from specloom_gateway.signals import watch_work
from specloom_gateway.stalled import StalledSweeper
from specloom_gateway.upstream import Upstream

log = logging.getLogger("specloom.gateway")

SERVICE_NAME = "specloom.v1.GatewayService"
STOP_TIMEOUT = 5.0
"""Seconds background tasks get to finish after cancellation at shutdown."""


class Gateway:
    """One gateway instance: its parts and its background tasks."""

    def __init__(self, settings: GatewaySettings, ctx: ServiceContext) -> None:
        host = ctx.settings
        # Tokens is hosted beside Sessions (same database), so one channel
        # serves both.
        channel = ctx.channel(host.sessions_address)
        upstream = Upstream(
            SessionsServiceStub(channel),
            TokensServiceStub(channel),
            ctx.channels.metadata,
            settings.upstream_timeout_seconds,
            report_batch_max=settings.report_batch_max,
            report_batches_in_flight=settings.report_batches_in_flight,
        )
        router = Router(host.orchestrator_addresses, ctx.channel, upstream)
        self.deps = Deps(
            settings=settings,
            upstream=upstream,
            auth=Authenticator(upstream, cache_seconds=settings.token_cache_seconds),
            router=router,
            hub=ExecutorHub(),
            wake=lambda key: None,
            replica_id=f"gateway-{new_id()}",
        )
        self.dispatcher = Dispatcher(self.deps)
        self.deps.wake = self.dispatcher.signal
        self.streams = ExecutorStreams(self.deps)
        self.joins = JoinReporter(self.deps, claimer_id=self.deps.replica_id)
        self.stalled = StalledSweeper(self.deps)
        self.servicer = GatewayServicer(self.deps, self.streams)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the background work: routes, work signals, sweeps."""
        s = self.deps.settings
        self._spawn(self.deps.router.run(s.route_refresh_seconds))
        self._spawn(watch_work(self.deps.upstream, self.dispatcher.work, self.joins.signal))
        self._spawn(self.dispatcher.sweep(s.claim_sweep_interval_seconds))
        self._spawn(self.joins.run(s.join_sweep_interval_seconds))
        self._spawn(self.stalled.run(s.stalled_sweep_interval_seconds))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    def drain(self) -> None:
        """A graceful stop began: no new work; streams end once their commands report."""
        log.info("gateway draining: no new work; executor streams end as commands finish")
        self.streams.drain()

    async def stop(self) -> None:
        """Stop the background work (bounded: shutdown must not hang on one task)."""
        # Before the channels close: an ended stream's teardown releases its
        # leases through Sessions.
        await self.streams.wait_closed(STOP_TIMEOUT)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in stuck:
                log.error("gateway background task %s did not stop", task.get_coro())
        await self.dispatcher.stop()


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("gateway background task died", exc_info=task.exception())


async def setup(server: GrpcServer, ctx: ServiceContext) -> None:
    """Register GatewayService and start the gateway's background work."""
    gateway = Gateway(ctx.settings_for(GatewaySettings), ctx)
    server.add(
        SERVICE_NAME,
        lambda grpc_server: gpb_grpc.add_GatewayServiceServicer_to_server(
            gateway.servicer, grpc_server
        ),
    )
    server.on_stop(gateway.drain)
    gateway.start()
    ctx.resources.push_async_callback(gateway.stop)


SERVICE = ServiceSpec(
    name="gateway",
    summary="client API, executor streams, auth, routing, dispatch, fan-out and join",
    setup=setup,
)
