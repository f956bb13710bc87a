"""The console as a :class:`~specloom.host.ServiceSpec`: ``specloom serve web``, and ``up``.

The console registers no gRPC service: it is an HTTP server on a port of
its own (``SPECLOOM_WEB_LISTEN``, 7421 by default) that calls the gateway's
public API. Hosted in a specloom process it gets that process's health
service and graceful stop: on SIGTERM its live streams end, then the HTTP
server stops within the grace.

Startup is in two halves so the console never delays the gRPC port: setup
binds the console's socket (browsers that connect early wait in its
backlog) and announces the URL; the web framework is imported and the HTTP
server started only once the process's gRPC server serves.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from specloom.host import ServiceContext, ServiceSpec
from specloom.rpc.server import GrpcServer
from specloom_web.config import WebSettings

if TYPE_CHECKING:
    import uvicorn

    from specloom_web.gateway import Gateway

log = logging.getLogger("specloom.web")

STOP_SECONDS = 5.0
"""How long open requests get once live streams were told to end."""


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"SPECLOOM_WEB_LISTEN {listen!r} is not host:port")
    return host.strip("[]"), int(port)


def bind(listen: str) -> socket.socket:
    """Bind and listen on the console's address now, so a port 0 is known before serving."""
    host, port = _split(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"the web console cannot listen on {listen}: {exc.strerror}") from exc
    sock.listen(512)
    sock.setblocking(False)
    return sock


def gateway_address(settings: WebSettings, ctx: ServiceContext) -> str:
    """The gateway to call: configured, or this process's own port (``specloom up``)."""
    if settings.web_gateway_address:
        return settings.web_gateway_address
    host, _, port = ctx.settings.listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    return f"{host}:{port}"


def _bind_configured(settings: WebSettings) -> socket.socket:
    try:
        return bind(settings.web_listen)
    except OSError:
        if not settings.web_listen_fallback:
            raise
        host, _ = _split(settings.web_listen)
        sock = bind(f"{host}:0")
        log.warning(
            "web console: %s is taken; serving on port %d instead",
            settings.web_listen,
            sock.getsockname()[1],
        )
        return sock


def _url(settings: WebSettings, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{'https' if settings.serves_tls() else 'http'}://{shown}:{port}"


def _load() -> None:
    import importlib

    for name in ("uvicorn", "specloom_web.app", "specloom_web.gateway"):
        importlib.import_module(name)


class _Console:
    """The HTTP server's life: started once gRPC serves, stopped with the process."""

    def __init__(self, settings: WebSettings, ctx: ServiceContext, sock: socket.socket) -> None:
        self._settings = settings
        self._ctx = ctx
        self._sock = sock
        self._server: uvicorn.Server | None = None
        self._gateway: Gateway | None = None
        self._closing_hook: Callable[[], None] = lambda: None
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        await self._ctx.serving.wait()
        # Imported after the gRPC port serves (see the module docstring), and in
        # a thread: the loop keeps answering gRPC calls while the modules load.
        await asyncio.to_thread(_load)
        import contextlib

        import uvicorn

        from specloom_web.app import build_app
        from specloom_web.gateway import Gateway

        class Server(uvicorn.Server):
            """uvicorn without its own signal handlers: the specloom process owns SIGTERM."""

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        settings = self._settings
        self._gateway = Gateway(gateway_address(settings, self._ctx), settings)
        app = build_app(settings, self._gateway)
        self._closing_hook = app.state.console.streams.close
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            ssl_certfile=settings.web_tls_cert_file,
            ssl_keyfile=settings.web_tls_key_file,
            timeout_graceful_shutdown=int(STOP_SECONDS),
            server_header=False,
            proxy_headers=False,
        )
        self._server = Server(config)
        log.info("web console serving (gateway %s)", self._gateway.address)
        await self._server.serve(sockets=[self._sock])

    async def stop(self) -> None:
        if self._server is not None:
            self._closing_hook()
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_SECONDS + 2)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        else:
            self._task.cancel()
        if self._task.done() and not self._task.cancelled() and self._task.exception():
            log.error("web console stopped with an error", exc_info=self._task.exception())
        self._sock.close()
        if self._gateway is not None:
            await self._gateway.close()


async def setup(server: GrpcServer, ctx: ServiceContext) -> None:
    """Bind the console's port and announce it; it serves once the gRPC server does."""
    settings = ctx.settings_for(WebSettings)
    if settings.web_listen == "off":
        return
    if (settings.web_tls_cert_file is None) != (settings.web_tls_key_file is None):
        raise ValueError("SPECLOOM_WEB_TLS_CERT_FILE and SPECLOOM_WEB_TLS_KEY_FILE go together")
    sock = _bind_configured(settings)
    url = _url(settings, sock)
    console = _Console(settings, ctx, sock)
    ctx.announce("web", url)
    log.info("web console on %s", url)
    ctx.resources.push_async_callback(console.stop)


SERVICE = ServiceSpec(
    name="web",
    summary="the web console: sessions, steps, children, actions, workflows (HTTP, port 7421)",
    setup=setup,
)
