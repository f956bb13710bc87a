"""The console as a :class:`~specloom.host.ServiceSpec`: ``specloom serve web``, and ``up``.

The console registers no gRPC service: it is an HTTP server on a port of
its own (``SPECLOOM_WEB_LISTEN``, 7421 by default) that calls the gateway's
public API. Hosted in a specloom process it gets that process's health
service and graceful stop: on SIGTERM its live streams end, then the HTTP
server stops within the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from specloom.host import ServiceContext, ServiceSpec
from specloom.rpc.server import GrpcServer
from specloom_web.app import build_app
from specloom_web.config import WebSettings
from specloom_web.gateway import Gateway

log = logging.getLogger("specloom.web")

STOP_SECONDS = 5.0
"""How long open requests get once live streams were told to end."""


class _Server(uvicorn.Server):
    """uvicorn, without its own signal handlers: the specloom process owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"SPECLOOM_WEB_LISTEN {listen!r} is not host:port")
    return host.strip("[]"), int(port)


def bind(listen: str) -> socket.socket:
    """Bind the console's address now, so a port 0 is known before serving."""
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


async def setup(server: GrpcServer, ctx: ServiceContext) -> None:
    """Start the console's HTTP server beside the process's gRPC server."""
    settings = ctx.settings_for(WebSettings)
    if settings.web_listen == "off":
        return
    if (settings.web_tls_cert_file is None) != (settings.web_tls_key_file is None):
        raise ValueError("SPECLOOM_WEB_TLS_CERT_FILE and SPECLOOM_WEB_TLS_KEY_FILE go together")
    try:
        sock = bind(settings.web_listen)
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
    gateway = Gateway(gateway_address(settings, ctx), settings)
    app = build_app(settings, gateway)
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
    web = _Server(config)
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"{'https' if settings.serves_tls() else 'http'}://{shown}:{port}"
    task = asyncio.create_task(web.serve(sockets=[sock]))
    ctx.announce("web", url)
    log.info("web console on %s (gateway %s)", url, gateway.address)

    async def stop() -> None:
        app.state.console.streams.close()
        web.should_exit = True
        try:
            await asyncio.wait_for(task, STOP_SECONDS + 2)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        finally:
            sock.close()
            await gateway.close()

    ctx.resources.push_async_callback(stop)


SERVICE = ServiceSpec(
    name="web",
    summary="the web console: sessions, steps, children, actions, workflows (HTTP, port 7421)",
    setup=setup,
)
