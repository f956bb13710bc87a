"""Hosting services in a process: one (``specloom serve``) or all (``specloom up``).

Tests use the same path, so a fixture that starts "the Sessions service"
starts exactly what a pod runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from specloom.host import HostSettings, ServiceContext, ServiceSpec
from specloom.orchestration.service import add_orchestrator, build_servicer
from specloom.rpc.channels import ChannelPool
from specloom.rpc.server import GrpcServer, TlsFiles
from specloom.rpc.tracing import setup_tracing
from specloom.workflow import Registry

log = logging.getLogger("specloom.process")


@dataclass
class RunningHost:
    """Services running in this process."""

    server: GrpcServer
    context: ServiceContext
    specs: Sequence[ServiceSpec]
    metrics: Any = field(default=None)

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.port

    @property
    def address(self) -> str:
        """``host:port`` that reaches the server from this machine."""
        host = self.server.listen.rsplit(":", 1)[0]
        if host in ("0.0.0.0", "[::]", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def endpoints(self) -> dict[str, str]:
        """Endpoints services serve on ports of their own (``web``: the console's URL)."""
        return dict(self.context.endpoints)

    async def stop(self, grace: float | None = None) -> None:
        """Drain (within ``grace``), then release every resource."""
        wait = self.context.settings.grace_seconds if grace is None else grace
        try:
            await self.server.stop(wait)
        finally:
            await self.context.resources.aclose()
            await self.context.channels.close()
            if self.metrics is not None:
                self.metrics[0].shutdown()
                self.metrics[0].server_close()  # shutdown() leaves the socket open


def metrics_address(listen: str) -> str:
    """The interface of a ``host:port`` listen address, for the metrics server.

    ``127.0.0.1:7420`` -> ``127.0.0.1``, ``[::1]:7420`` -> ``::1``, ``:7420``
    and ``0.0.0.0:7420`` -> ``0.0.0.0``, ``[::]:7420`` -> ``::``.
    """
    host = listen.rsplit(":", 1)[0] if ":" in listen else listen
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0"  # noqa: S104 - the listener's own wildcard, as configured


def _tls(settings: HostSettings) -> TlsFiles | None:
    if settings.tls_cert_file is None:
        return None
    if settings.tls_key_file is None:
        raise ValueError("SPECLOOM_TLS_CERT_FILE is set but SPECLOOM_TLS_KEY_FILE is not")
    return TlsFiles(settings.tls_cert_file, settings.tls_key_file)


async def start_host(
    specs: Sequence[ServiceSpec],
    settings: HostSettings,
    overrides: Mapping[str, Any] | None = None,
    *,
    self_hosted: bool = False,
) -> RunningHost:
    """Start ``specs`` in one gRPC server.

    With ``self_hosted`` (the all-in-one mode) the services reach each other
    through this server's own port: Sessions and orchestrator addresses are
    set to it once bound, so a configured port 0 works too.
    """
    if not specs:
        raise ValueError("no services to start")
    secret = settings.secret()
    if settings.tracing:
        setup_tracing("+".join(spec.name for spec in specs))
    server = GrpcServer(
        settings.listen, internal_secret=secret, tls=_tls(settings), tracing=settings.tracing
    )
    port = server.bind()
    if self_hosted:
        host = settings.listen.rsplit(":", 1)[0]
        if host in ("0.0.0.0", "[::]", ""):  # noqa: S104
            host = "127.0.0.1"
        own = f"{host}:{port}"
        settings = settings.model_copy(
            update={"sessions_address": own, "orchestrator_addresses": [own], "listen": own}
        )
    channels = ChannelPool(
        internal_secret=secret,
        root_certificates=settings.tls_root_file,
        tracing=settings.tracing,
    )
    if self_hosted:
        # The services' calls to each other skip loopback gRPC (same contract).
        channels.serve_locally(settings.sessions_address, server.local)
    resources = contextlib.AsyncExitStack()
    context = ServiceContext(settings, channels, resources, dict(overrides or {}))
    try:
        orchestrators = [spec for spec in specs if spec.workflows is not None]
        for spec in specs:
            if spec.workflows is None:
                await spec.setup(server, context)
        if len(orchestrators) == 1:
            await orchestrators[0].setup(server, context)
        elif orchestrators:
            # One server holds one OrchestratorService: serve every family's
            # workflows from a single servicer over the merged registry.
            merged = Registry.merged(*(spec.workflows for spec in orchestrators if spec.workflows))
            add_orchestrator(server, build_servicer(merged, context))
        await server.start()
        context.serving.set()
    except BaseException:
        await server.stop(0)
        await resources.aclose()
        await channels.close()
        raise
    metrics = None
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server

        # On the gRPC listener's own interface: `up` on 127.0.0.1 must not
        # publish its metrics to the network (a pod listening on 0.0.0.0
        # serves them on every interface, as before).
        metrics = start_http_server(settings.metrics_port, addr=metrics_address(settings.listen))
    return RunningHost(server=server, context=context, specs=list(specs), metrics=metrics)
