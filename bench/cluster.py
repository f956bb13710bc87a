"""specloom under test: its services started as real processes.

Two shapes:

- ``split`` (the Kubernetes shape, on PostgreSQL): ``specloom serve
  sessions``, the bench orchestrator (``python -m bench.serve``) and
  ``specloom serve gateway``, one process each, over loopback gRPC.
- ``up`` (the all-in-one shape): ``python -m bench.serve --up``, i.e.
  ``specloom up``'s ``start_host(..., self_hosted=True)`` composition plus the
  bench workflows, on SQLite (the embedded default) or PostgreSQL.

Processes, not tasks in the harness's own loop, so the harness (the
executors) does not share an interpreter with the services, py-spy can
attach to each by pid, and the gateway's resident memory is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import grpc
from pydantic import SecretStr

from bench.pg import async_url
from specloom.host import HostSettings, discover

Shape = Literal["split", "up"]


class Unavailable(RuntimeError):
    """specloom's services are not installed (yet) in this tree."""


@dataclass
class Service:
    """One running service process."""

    name: str
    address: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int | None = None
    """Prometheus port when ``SPECLOOM_BENCH_METRICS=1`` (batch sizes, RPC counts)."""

    @property
    def pid(self) -> int:
        """Process id (py-spy, memory)."""
        return self.process.pid

    def rss_mb(self) -> float:
        """Resident memory now, in MB (from /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")


@dataclass
class Cluster:
    """A running specloom and how to reach it."""

    shape: Shape
    database: str
    """"postgresql" or "sqlite"."""
    gateway: str
    """Address executors and clients dial."""
    token: str
    """An admin token of the bench scope."""
    services: list[Service] = field(default_factory=list)

    def service(self, name: str) -> Service:
        """The process hosting ``name`` (in the ``up`` shape, the one process)."""
        for svc in self.services:
            if svc.name == name or self.shape == "up":
                return svc
        raise KeyError(name)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now (the services bind them a moment later).

    Picked together, every socket held until all are known: picked one after
    the other, the kernel may hand the same port out twice.
    """
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    """A port nothing listens on now (the service binds it a moment later)."""
    return free_ports(1)[0]


def _specloom_cli() -> str:
    path = Path(sys.executable).with_name("specloom")
    if not path.exists():
        raise Unavailable(f"{path} not found: pip install -e . first")
    return str(path)


def require_services() -> None:
    """Raise :class:`Unavailable` unless Sessions and the gateway are installed."""
    try:
        found = discover()
    except Exception as exc:  # an entry point that does not import yet
        raise Unavailable(f"services do not load: {exc}") from exc
    missing = [n for n in ("sessions", "gateway") if n not in found]
    if missing:
        raise Unavailable(f"specloom services not available yet: {', '.join(missing)}")


async def _bootstrap(settings: HostSettings) -> str:
    """Migrate the database and issue the bench's admin token, as ``specloom up`` does."""
    sessions = discover()["sessions"]
    await sessions.admin["migrate"](settings)
    token = await sessions.admin["issue-token"](
        settings,
        account_id="bench",
        project_id="bench",
        user_id="bench",
        admin=True,
        name="benchmark harness",
    )
    return str(token)


async def _wait_ready(service: Service, limit_s: float) -> None:
    async with grpc.aio.insecure_channel(service.address) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), limit_s)
        except TimeoutError:
            tail = service.log.read_text(errors="replace")[-3000:] if service.log.exists() else ""
            state = service.process.poll()
            raise RuntimeError(
                f"{service.name} not ready on {service.address} after {limit_s}s "
                f"(exit code {state}):\n{tail}"
            ) from None


def _spawn(name: str, argv: list[str], env: dict[str, str], logs: Path, address: str) -> Service:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    handle = log.open("wb")
    metrics = free_port() if os.environ.get("SPECLOOM_BENCH_METRICS") == "1" else None
    if metrics is not None:
        env = dict(env, SPECLOOM_METRICS_PORT=str(metrics))
    process = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    return Service(name=name, address=address, process=process, log=log, metrics_port=metrics)


def _stop(services: list[Service]) -> None:
    for svc in services:
        if svc.process.poll() is None:
            svc.process.send_signal(signal.SIGTERM)
    for svc in services:
        try:
            svc.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            svc.process.kill()
            svc.process.wait()


@contextlib.asynccontextmanager
async def running(
    shape: Shape, database_url: str, logs: Path, *, ready_s: float = 60.0
) -> AsyncIterator[Cluster]:
    """Start specloom in ``shape`` on ``database_url`` (a libpq or SQLite URL); stop after."""
    require_services()
    url = database_url if database_url.startswith("sqlite") else async_url(database_url)
    secret, pepper = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    settings = HostSettings(
        database_url=url,
        internal_secret=SecretStr(secret),
        token_pepper=SecretStr(pepper),
    )
    token = await _bootstrap(settings)
    env = dict(os.environ)
    env.update(
        {
            "SPECLOOM_DATABASE_URL": url,
            "SPECLOOM_INTERNAL_SECRET": secret,
            "SPECLOOM_TOKEN_PEPPER": pepper,
            "SPECLOOM_GRACE_SECONDS": "1",
            # The idle-fleet run connects a thousand executors on one token.
            "SPECLOOM_MAX_EXECUTOR_STREAMS_PER_TOKEN": "100000",
        }
    )
    services: list[Service] = []
    try:
        if shape == "up":
            address = f"127.0.0.1:{free_port()}"
            argv = [sys.executable, "-m", "bench.serve", "--up"]
            services.append(_spawn("up", argv, dict(env, SPECLOOM_LISTEN=address), logs, address))
            await _wait_ready(services[-1], ready_s)
            gateway = address
        else:
            cli = _specloom_cli()
            sessions, orchestrator, gateway = (f"127.0.0.1:{p}" for p in free_ports(3))
            env["SPECLOOM_SESSIONS_ADDRESS"] = sessions
            # In dependency order, each ready before the next starts: the
            # gateway asks the orchestrator what it serves when it starts.
            plan = [
                ("sessions", [cli, "serve", "sessions", "--listen", sessions], sessions),
                ("orchestrator", [sys.executable, "-m", "bench.serve", "bench"], orchestrator),
                (
                    "gateway",
                    [cli, "serve", "gateway", "--listen", gateway, "--orchestrator", orchestrator],
                    gateway,
                ),
            ]
            for name, argv, address in plan:
                services.append(
                    _spawn(name, argv, dict(env, SPECLOOM_LISTEN=address), logs, address)
                )
                await _wait_ready(services[-1], ready_s)
        database = "sqlite" if url.startswith("sqlite") else "postgresql"
        yield Cluster(shape, database, gateway, token, services)
    finally:
        await asyncio.to_thread(_stop, services)
